"""Fixtures for event-log tests: a nats-server for the session and fresh streams per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from civicguard.bus.nats import NatsEventLog
from tests.bus.nats_server import NatsServer

_names = itertools.count()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server with JetStream shared by the session's tests (each uses its own stream)."""
    server = NatsServer(tmp_path_factory.mktemp("nats") / "store").start()
    yield server
    server.stop()


NatsLogFactory = Callable[..., NatsEventLog]


@pytest.fixture
def nats_stream() -> tuple[str, str]:
    """A stream name and subject prefix no other test uses."""
    n = next(_names)
    return f"TEST{n}", f"test.events.{n}"


@pytest.fixture
def nats_log(nats_server: NatsServer, nats_stream: tuple[str, str]) -> Iterator[NatsLogFactory]:
    """Opens NatsEventLogs on this test's stream (same durable unless told); closes them after."""
    opened: list[NatsEventLog] = []
    stream, prefix = nats_stream

    def open_log(durable: str = "workers", **options: Any) -> NatsEventLog:
        options.setdefault("subject_prefix", prefix)
        event_log = NatsEventLog(nats_server.url, stream, durable, **options)
        opened.append(event_log)
        return event_log

    yield open_log
    for event_log in opened:
        event_log.close()


@pytest.fixture
def own_nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server for one test alone (default stream and subject names, restarts allowed)."""
    server = NatsServer(tmp_path / "nats-store").start()
    yield server
    server.stop()

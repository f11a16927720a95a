"""Citizens fixtures: the safety app's backend as a provisioned device, readings of citizens."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from civicguard.ingest.model import Device, IngestResult, Transport
from civicguard.platform import Platform

APP_STREAM = "citizen.safety_app"


def reading(seq: int, ts: float, citizen: str, lat: float = 21.88, lon: float = -102.29) -> dict:
    """One reading of the safety app about ``citizen``."""
    return {"seq": seq, "ts": ts, "values": {"citizen": citizen, "lat": lat, "lon": lon}}


def submit(platform: Platform, device: Device, items: list[dict[str, Any]]) -> IngestResult:
    """Submit readings over HTTP's path into the real IngestService."""
    return platform.ingest.submit(device, orjson.dumps(items), Transport.HTTP)


def drain(platform: Platform) -> None:
    """Let the processor store everything published so far."""
    while platform.processor.run_once(timeout=0):
        pass


@pytest.fixture
def app_backend(provision: Any) -> Device:
    """The citizen app's backend: one provisioned device of the consent-based stream."""
    device, _ = provision(APP_STREAM, "safety-app-backend")
    return device


def database_bytes(platform: Platform) -> bytes:
    """Every byte of the SQLite database and its write-ahead log."""
    platform.store.engine.dispose()
    path = platform.settings.data_dir / "civicguard.db"
    out = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return out + (wal.read_bytes() if wal.exists() else b"")

"""The NATS JetStream event log against a real nats-server: durable, shared, redelivering."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nats
import numpy as np
import orjson
import pytest
from nats.js.api import ConsumerConfig
from sqlalchemy.exc import OperationalError

from civicguard.bus.nats import ConsumerConflictError, NatsEventLog
from civicguard.bus.port import Event, EventLogUnavailable
from civicguard.clock import ManualClock
from civicguard.ingest.model import Device, ReadingBatch, Rejection, Transport
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings
from civicguard.store.database import make_engine, sqlite_url
from civicguard.store.repositories import Store
from civicguard.worker import run_worker
from tests.bus.conftest import NatsLogFactory
from tests.bus.events import assert_same, batch, consume_all, rejection, seqs
from tests.bus.nats_server import NatsServer

pytestmark = pytest.mark.nats


def drain(log: NatsEventLog, *, idle: float = 0.5, max_events: int = 256) -> list[Event]:
    """Consume and commit until the log stays empty for ``idle`` s."""
    got: list[Event] = []
    while events := log.consume(max_events, idle):
        got.extend(events)
        log.commit()
    return got


def test_events_survive_a_consumer_restart(nats_log: NatsLogFactory) -> None:
    nats_log("ingest").publish([batch(1, first_seq=i) for i in range(4)])
    first = nats_log()
    assert seqs(consume_all(first, 2)) == [0, 1]
    first.commit()
    first.close()
    assert seqs(drain(nats_log())) == [2, 3]


def test_closing_hands_uncommitted_events_to_the_next_worker(nats_log: NatsLogFactory) -> None:
    nats_log("ingest").publish([batch(1, first_seq=i) for i in range(3)])
    quitter = nats_log(ack_wait=60)
    assert seqs(consume_all(quitter, 3)) == [0, 1, 2]
    quitter.close()
    # Well inside ack_wait: only the close's hand-back can have made them available.
    assert sorted(seqs(consume_all(nats_log(ack_wait=60), 3))) == [0, 1, 2]


def test_a_killed_consumers_events_go_to_the_next_one_after_ack_wait(
    nats_server: NatsServer, nats_stream: tuple[str, str], nats_log: NatsLogFactory
) -> None:
    stream, prefix = nats_stream
    nats_log("ingest").publish([batch(1, first_seq=7), rejection()])
    # A worker that takes both events and is killed before it commits.
    taker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from civicguard.bus.nats import NatsEventLog\n"
            f"log = NatsEventLog({nats_server.url!r}, {stream!r}, subject_prefix={prefix!r},"
            " ack_wait=1.0)\n"
            "got = []\n"
            "while len(got) < 2: got += log.consume(10, 0.5)\n"
            "print('taken', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert taker.stdout is not None
        assert taker.stdout.readline().strip() == b"taken"
    finally:
        taker.kill()
        taker.wait()
    other = nats_log(ack_wait=1.0)
    redelivered = consume_all(other, 2, timeout=10)
    other.commit()
    assert len(redelivered) == 2
    assert_same(redelivered[0], batch(1, first_seq=7))
    assert_same(redelivered[1], rejection())
    # Committed now: waiting out another ack_wait brings nothing back.
    assert other.consume(10, 2.0) == []


def test_a_living_consumer_keeps_what_it_holds_beyond_ack_wait(nats_log: NatsLogFactory) -> None:
    # A step may take longer than ack_wait (a slow database): its events are not handed out
    # again meanwhile, so nothing is processed twice.
    nats_log("ingest").publish([batch(1, first_seq=0)])
    slow = nats_log(ack_wait=1.0)
    assert seqs(consume_all(slow, 1)) == [0]
    other = nats_log(ack_wait=1.0)
    assert other.consume(10, 3.5) == []
    slow.commit()
    assert other.consume(10, 1.5) == []


def test_a_commit_after_a_release_acks_only_what_came_since(nats_log: NatsLogFactory) -> None:
    # The lost-readings defect: a failed step's events stayed taken and the next successful
    # step's commit acknowledged them, unstored.
    ingest = nats_log("ingest")
    ingest.publish([batch(1, first_seq=0)])
    worker = nats_log()
    assert seqs(consume_all(worker, 1)) == [0]
    worker.release(delay=3.0)  # the step failed: the database is away
    ingest.publish([batch(1, first_seq=1)])
    assert seqs(consume_all(worker, 1)) == [1]
    worker.commit()
    assert seqs(consume_all(worker, 1, timeout=10)) == [0]
    worker.commit()
    assert worker.consume(10, 1.0) == []


def test_released_one_by_one_events_come_singly(nats_log: NatsLogFactory) -> None:
    nats_log("ingest").publish([batch(1, first_seq=i) for i in range(3)])
    worker = nats_log()
    assert seqs(consume_all(worker, 3)) == [0, 1, 2]
    worker.release(delay=0, one_by_one=True)
    singles = [seqs(worker.consume(10, 5.0)) for _ in range(3)]
    assert singles == [[0], [1], [2]]
    assert worker.deliveries() == 2
    worker.commit()


def test_a_publish_no_stream_answers_is_unavailable(nats_log: NatsLogFactory) -> None:
    ingest = nats_log()
    ingest.delete()
    with pytest.raises(EventLogUnavailable):
        ingest.publish([batch(1)])


def test_a_publish_to_a_stopped_server_is_unavailable(own_nats_server: NatsServer) -> None:
    ingest = NatsEventLog(own_nats_server.url, "AWAY", timeout=1.0)
    try:
        own_nats_server.stop()
        with pytest.raises(EventLogUnavailable):
            ingest.publish([batch(1)])
    finally:
        ingest.close()


def test_a_batch_sent_again_is_kept_once(nats_log: NatsLogFactory) -> None:
    # A device's retry after a 503 whose publish did land: same readings, new receipt time.
    ingest = nats_log("ingest")
    ingest.publish([batch(3, first_seq=0)])
    again = dataclasses.replace(batch(3, first_seq=0), received_at=np.full(3, 1_790_000_099.0))
    ingest.publish([again, batch(3, first_seq=3)])
    assert seqs(drain(nats_log())) == [0, 1, 2, 3, 4, 5]


def test_an_unreadable_message_comes_back_as_a_refusal(
    nats_log: NatsLogFactory, nats_stream: tuple[str, str]
) -> None:
    worker = nats_log()
    _, prefix = nats_stream
    _publish_raw(worker.url, f"{prefix}.0", b"\x00 not an event")
    got = consume_all(worker, 1)
    worker.commit()
    assert len(got) == 1
    refusal = got[0]
    assert isinstance(refusal, Rejection)
    assert refusal.reason.value == "unprocessable_event"
    assert refusal.payload == b"\x00 not an event"
    assert f"{prefix}.0" in refusal.detail
    assert worker.consume(10, 0.5) == []


def test_an_idle_consumer_of_the_older_layout_is_removed(
    nats_log: NatsLogFactory, nats_stream: tuple[str, str]
) -> None:
    stream, prefix = nats_stream
    ingest = nats_log("ingest", partitions=2)
    ingest.publish([batch(1, first_seq=i) for i in range(4)])
    # What the previous version made: one consumer named "workers" taking every partition.
    _add_consumer(ingest.url, stream, "workers", f"{prefix}.>")
    got = [seqs(drain(nats_log(partitions=2, partition=p))) for p in (0, 1)]
    assert sorted(got[0] + got[1]) == [0, 1, 2, 3]
    assert sorted(_consumer_names(ingest.url, stream)) == ["workers-0", "workers-1"]


def test_a_busy_overlapping_consumer_is_a_clear_error(
    nats_log: NatsLogFactory, nats_stream: tuple[str, str]
) -> None:
    stream, prefix = nats_stream
    ingest = nats_log("ingest", partitions=2)
    ingest.publish([batch(1, first_seq=0)])
    _add_consumer(ingest.url, stream, "everything", f"{prefix}.>")
    with pytest.raises(ConsumerConflictError, match=r"consumer 'everything'.*nats consumer rm"):
        nats_log(partitions=2, partition=0).start_consuming()


def test_a_consumer_made_with_another_ack_wait_is_brought_to_this_ones(
    nats_log: NatsLogFactory, nats_stream: tuple[str, str]
) -> None:
    # Consumers outlive the version that made them: the previous one waited 30 s.
    stream, prefix = nats_stream
    ingest = nats_log("ingest")
    _add_consumer(ingest.url, stream, "workers-0", f"{prefix}.0", ack_wait=30.0)
    nats_log(ack_wait=2.0).start_consuming()
    assert _ack_wait(ingest.url, stream, "workers-0") == 2.0


def _ack_wait(url: str, stream: str, name: str) -> float | None:
    async def ask() -> float | None:
        nc = await nats.connect(url)
        try:
            return (await nc.jetstream().consumer_info(stream, name)).config.ack_wait
        finally:
            await nc.close()

    return asyncio.run(ask())


def _publish_raw(url: str, subject: str, data: bytes) -> None:
    async def send() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().publish(subject, data)
        finally:
            await nc.close()

    asyncio.run(send())


def _add_consumer(
    url: str, stream: str, name: str, subject: str, ack_wait: float | None = None
) -> None:
    async def add() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().add_consumer(
                stream,
                ConsumerConfig(durable_name=name, filter_subject=subject, ack_wait=ack_wait),
            )
        finally:
            await nc.close()

    asyncio.run(add())


def _consumer_names(url: str, stream: str) -> list[str]:
    async def names() -> list[str]:
        nc = await nats.connect(url)
        try:
            return [c.name for c in await nc.jetstream().consumers_info(stream)]
        finally:
            await nc.close()

    return asyncio.run(names())


def test_two_workers_share_the_durable_without_loss_or_duplicates(
    nats_log: NatsLogFactory,
) -> None:
    nats_log("ingest").publish([batch(1, first_seq=i) for i in range(100)])
    a, b = nats_log(), nats_log()
    got_a: list[int] = []
    got_b: list[int] = []
    quiet = 0
    while quiet < 2:
        taken_a, taken_b = a.consume(7, 0.3), b.consume(7, 0.3)
        a.commit()
        b.commit()
        got_a += seqs(taken_a)
        got_b += seqs(taken_b)
        quiet = quiet + 1 if not (taken_a or taken_b) else 0
    assert got_a
    assert got_b
    assert sorted(got_a + got_b) == list(range(100))


def test_a_publish_waits_for_a_stream_that_is_not_listening_yet(
    nats_log: NatsLogFactory,
) -> None:
    # Two processes starting on a fresh server: one publishes while the stream it needs is
    # still being set up. Here the stream is gone when the publish starts and back 0.3 s later.
    ingest = nats_log()
    ingest.delete()
    back = threading.Timer(0.3, lambda: nats_log("others"))  # connecting creates the stream
    back.start()
    try:
        ingest.publish([batch(3, first_seq=0)])
    finally:
        back.join()
    assert seqs(drain(nats_log())) == [0, 1, 2]


def test_a_batch_over_the_server_payload_limit_is_split(nats_log: NatsLogFactory) -> None:
    big = batch(25_000)
    log = nats_log()
    log.publish([big])
    got = drain(log)
    assert len(got) > 1
    assert seqs(got) == list(range(25_000))
    for name in ("ts", "received_at", "values"):
        whole = np.concatenate([getattr(e, name) for e in got if isinstance(e, ReadingBatch)])
        np.testing.assert_array_equal(whole, getattr(big, name))


def test_partitions_keep_each_device_on_one_partition(nats_log: NatsLogFactory) -> None:
    devices = [f"sensor-{i:02d}" for i in range(8)]
    events: list = []
    for i in range(3):
        for device in devices:
            events.append(
                dataclasses.replace(batch(2, first_seq=2 * i), device_ids=(device, device))
            )
    events += [dataclasses.replace(rejection(), device_id=device) for device in devices]
    nats_log("ingest", partitions=3).publish(events)
    seen: dict[str, int] = {}
    total = 0
    for p in range(3):
        for event in drain(nats_log(partitions=3, partition=p)):
            device = event.device_ids[0] if isinstance(event, ReadingBatch) else event.device_id
            assert seen.setdefault(device, p) == p, f"{device} split across partitions"
            total += 1
    assert sorted(seen) == devices
    assert len(set(seen.values())) > 1, "every device landed on one partition"
    assert total == len(events)


def test_events_survive_a_server_restart(own_nats_server: NatsServer) -> None:
    ingest = NatsEventLog(own_nats_server.url, "RESTART")
    try:
        ingest.publish([batch(2, first_seq=0), rejection()])
    finally:
        ingest.close()
    own_nats_server.restart()
    worker = NatsEventLog(own_nats_server.url, "RESTART")
    try:
        got = drain(worker)
    finally:
        worker.close()
    assert len(got) == 2
    assert_same(got[0], batch(2, first_seq=0))
    assert_same(got[1], rejection())


def stored(data_dir: Path) -> list[tuple[str, int]]:
    """``(device, seq)`` of every reading stored in a worker's SQLite database (none yet: [])."""
    if not (data_dir / "civicguard.db").exists():
        return []
    engine = make_engine(sqlite_url(data_dir))
    try:
        return [(r["device_id"], r["seq"]) for r in Store(engine).readings.query(limit=100_000)]
    except OperationalError:  # the worker has not created its tables yet
        return []
    finally:
        engine.dispose()


def test_workers_store_every_reading_published_by_ingest_exactly_once(
    own_nats_server: NatsServer, tmp_path: Path
) -> None:
    nats = {"event_log": "nats", "nats_url": own_nats_server.url}
    clock = ManualClock(1_790_000_000.0)
    ingest = Platform.build(
        Settings(data_dir=tmp_path / "ingest", **nats), clock=clock, keys=MemoryKeyStore()
    )
    stops = [threading.Event(), threading.Event()]
    dirs = [tmp_path / "worker-a", tmp_path / "worker-b"]
    workers = [
        threading.Thread(target=run_worker, args=(Settings(data_dir=d, **nats), "workers", s))
        for d, s in zip(dirs, stops, strict=True)
    ]
    try:
        devices = [
            Device(
                id=f"substation-{i}",
                stream="power.substation",
                lat=21.88 + i / 1000,
                lon=-102.29,
                district="centro",
            )
            for i in range(4)
        ]
        for device in devices:
            ingest.registry.provision(device, clock.now())
        for worker in workers:
            worker.start()
        # Publish only once both workers wait on the consumer, or the first may take it all.
        observer = NatsEventLog(own_nats_server.url, Settings().nats_stream)
        try:
            deadline = time.monotonic() + 30
            while observer.waiting_consumers() < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            observer.close()
        expected: set[tuple[str, int]] = set()
        for round_ in range(40):
            clock.advance(10)
            for device in devices:
                readings = [
                    {
                        "seq": round_ * 10 + k,
                        "ts": clock.now() - 5 + k * 0.5,
                        "values": {"voltage": 11.0, "frequency": 50.0, "load": 20.0 + k},
                    }
                    for k in range(10)
                ]
                body = orjson.dumps(readings)
                result = ingest.ingest.submit(device, body, Transport.HTTP)
                assert result.accepted == 10, result.rejections
                expected.update((device.id, int(r["seq"])) for r in readings)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sum(len(stored(d)) for d in dirs) >= len(expected):
                break
            time.sleep(0.2)
    finally:
        for stop in stops:
            stop.set()
        for worker in workers:
            worker.join(timeout=15)
        ingest.close()
    assert not any(w.is_alive() for w in workers)
    by_worker = [stored(d) for d in dirs]
    assert all(by_worker), "both workers should have taken a share"
    every = by_worker[0] + by_worker[1]
    assert len(every) == len(expected) == 1600
    assert set(every) == expected


def test_the_worker_command_stores_readings_and_stops_on_sigterm(
    own_nats_server: NatsServer, tmp_path: Path
) -> None:
    NatsEventLog(own_nats_server.url, Settings().nats_stream).close()  # stream exists
    env = {
        **os.environ,
        "CIVICGUARD_NATS_URL": own_nats_server.url,
        "CIVICGUARD_DATA_DIR": str(tmp_path / "worker"),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "civicguard.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ingest = NatsEventLog(own_nats_server.url, Settings().nats_stream)
        try:
            ingest.publish([batch(1, stream="power.substation", first_seq=i) for i in range(5)])
        finally:
            ingest.close()
        deadline = time.monotonic() + 30
        while len(stored(tmp_path / "worker")) < 5 and time.monotonic() < deadline:
            assert worker.poll() is None, worker.communicate()[0].decode()
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=20)[0].decode()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, output
    assert sorted(seq for _, seq in stored(tmp_path / "worker")) == [0, 1, 2, 3, 4]


def test_a_worker_carries_on_after_the_server_restarts(
    own_nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "worker", event_log="nats", nats_url=own_nats_server.url
    )
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(settings, "workers", stop))
    worker.start()
    try:
        ingest = NatsEventLog(own_nats_server.url, settings.nats_stream)
        try:
            ingest.publish([batch(1, first_seq=0)])
        finally:
            ingest.close()
        deadline = time.monotonic() + 30
        while len(stored(settings.data_dir)) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        own_nats_server.restart()
        ingest = NatsEventLog(own_nats_server.url, settings.nats_stream)
        try:
            ingest.publish([batch(1, first_seq=1)])
        finally:
            ingest.close()
        deadline = time.monotonic() + 30
        while len(stored(settings.data_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=20)
    assert not worker.is_alive()
    assert sorted(seq for _, seq in stored(settings.data_dir)) == [0, 1]


def test_a_stream_whose_subjects_another_stream_holds_is_a_clear_error(
    nats_log: NatsLogFactory, nats_stream: tuple[str, str]
) -> None:
    _, prefix = nats_stream
    url = nats_log().url  # this test's stream now holds ``prefix.>``
    with pytest.raises(RuntimeError, match=r"refuses to create it for subjects test\.events\."):
        NatsEventLog(url, f"ELSEWHERE{prefix.rsplit('.', 1)[-1]}", subject_prefix=prefix)

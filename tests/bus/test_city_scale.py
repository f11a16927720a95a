"""City-scale mode as the README runs it: nats-server, PostgreSQL, ``serve`` and two workers.

Every test starts real processes (``civicguard serve``, ``civicguard worker --partition i``)
against a nats-server and a PostgreSQL database of its own, posts readings over HTTP as
devices do, and counts what is stored: exactly the readings ``serve`` acknowledged, each
once, whatever was done to the processes meanwhile.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import orjson
import pytest

from civicguard.benchmarks.processes import TcpProxy
from civicguard.bus.nats import NatsEventLog
from tests.bus.city import (
    City,
    PgDatabase,
    Sender,
    Sensor,
    consumers,
    shown_on_failure,
    wait_until_stored,
)
from tests.bus.events import batch
from tests.bus.nats_server import NatsServer
from tests.store.conftest import _admin

pytestmark = [pytest.mark.nats, pytest.mark.postgres]

#: Two devices land on each of the two partitions (partitioning is by device).
DEVICES = ("substation-00", "substation-01", "substation-04", "substation-05")


@pytest.fixture(scope="module")
def provisioned(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer
) -> Iterator[tuple[PgDatabase, Path, list[Sensor]]]:
    """A database and data directory with DEVICES provisioned through the CLI, to copy from."""
    _admin().close()  # skips (fails under CI) without a PostgreSQL server
    template = PgDatabase(prefix="civicguard_city_template").create()
    data_dir = tmp_path_factory.mktemp("city-template")
    city = City(nats_server.url, template.url, data_dir, data_dir / "logs")
    try:
        # The first call creates the schema and the keys; the others can run side by side.
        first = city.provision(DEVICES[0])
        with ThreadPoolExecutor(len(DEVICES) - 1) as pool:
            rest = list(pool.map(city.provision, DEVICES[1:]))
        yield template, data_dir, [first, *rest]
    finally:
        template.drop()


@pytest.fixture
def database(provisioned: tuple[PgDatabase, Path, list[Sensor]]) -> Iterator[PgDatabase]:
    """A copy of the provisioned database for one test."""
    db = PgDatabase().create(template=provisioned[0])
    yield db
    db.drop()


@pytest.fixture
def city(
    provisioned: tuple[PgDatabase, Path, list[Sensor]],
    database: PgDatabase,
    own_nats_server: NatsServer,
    tmp_path: Path,
) -> Iterator[City]:
    """Two partitions; every process stopped at the end."""
    data_dir = tmp_path / "data"
    shutil.copytree(provisioned[1], data_dir, ignore=shutil.ignore_patterns("logs"))
    city = City(own_nats_server.url, database.url, data_dir, tmp_path / "logs", partitions=2)
    yield city
    city.stop_all()


@pytest.fixture
def sensors(provisioned: tuple[PgDatabase, Path, list[Sensor]]) -> list[Sensor]:
    """The provisioned devices, each starting at seq 1."""
    return [Sensor(s.device_id, s.secret) for s in provisioned[2]]


def start(city: City, order: str, sender: Sender | None = None) -> None:
    """Start ``serve`` and both partition workers in ``order``; return once serve listens.

    With ``serve first`` and a ``sender``, one round of readings is acknowledged before any
    worker runs: it waits in the event log.
    """
    if order == "serve first":
        city.wait_serving(city.serve())
        if sender is not None:
            sender.rounds(1)
        city.worker(0)
        city.worker(1)
        wait_for_consumers(city, ["workers-0", "workers-1"])
    else:
        city.worker(0)
        city.worker(1)
        wait_for_consumers(city, ["workers-0", "workers-1"])
        city.wait_serving(city.serve())


def wait_for_consumers(city: City, names: list[str], timeout: float = 60.0) -> None:
    """Wait until the stream has the consumers ``names`` (the workers are up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sorted(consumers(city.nats_url)) == names:
                return
        except Exception:  # noqa: S110 - the stream may not exist yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"consumers {names} did not appear within {timeout} s")


def post_until_stored(database: PgDatabase, posting: threading.Thread, n: int = 400) -> int:
    """Wait while devices post until ``n`` readings are stored; return how many are."""
    stored = len(database.stored_readings())
    while stored < n and posting.is_alive():
        time.sleep(0.05)
        stored = len(database.stored_readings())
    assert posting.is_alive(), "the devices finished before the fault: make them post longer"
    return stored


def assert_exactly_acknowledged(city: City, db: PgDatabase, sender: Sender) -> None:
    """Every acknowledged reading stored once, nothing else stored."""
    assert not sender.errors, sender.errors[:5]
    rows = wait_until_stored(db, len(sender.acknowledged))
    assert len(rows) == len(set(rows)), "a reading was stored twice"
    assert set(rows) == sender.acknowledged, (
        f"{len(sender.acknowledged - set(rows))} acknowledged readings not stored, "
        f"{len(set(rows) - sender.acknowledged)} stored that were not acknowledged"
    )


def assert_no_failures(city: City) -> None:
    """No process logged a failure or a traceback."""
    for proc in city.processes:
        out = proc.output()
        assert "Traceback" not in out, f"{proc.name} failed"
        assert "failed" not in out, f"{proc.name} failed"


@pytest.mark.parametrize("order", ["serve first", "workers first"])
def test_serve_and_two_partition_workers_share_the_load(
    city: City, database: PgDatabase, sensors: list[Sensor], order: str
) -> None:
    with shown_on_failure(city):
        sender = Sender(city, sensors)
        start(city, order, sender)  # serve first: one round already sent, before any worker
        sender.rounds(4 if order == "serve first" else 5)
        assert len(sender.acknowledged) == 4 * 5 * 50
        assert_exactly_acknowledged(city, database, sender)
        # serve only publishes; each worker consumes its own partition.
        found = consumers(city.nats_url)
        assert sorted(found) == ["workers-0", "workers-1"]
        assert found["workers-0"].filter_subject == "civicguard.events.0"
        assert found["workers-1"].filter_subject == "civicguard.events.1"
        assert found["workers-0"].delivered > 0
        assert found["workers-1"].delivered > 0
        assert_no_failures(city)


def test_a_worker_started_without_partition_among_two_is_a_clear_error(city: City) -> None:
    with shown_on_failure(city):
        worker = city.worker(None)
        assert worker.process is not None
        assert worker.process.wait(timeout=60) == 2
        out = worker.output()
        assert "--partition" in out
        assert "CIVICGUARD_NATS_PARTITIONS" in out
        assert "Traceback" not in out


def test_a_worker_killed_mid_stream_is_replaced_by_a_restart_with_nothing_lost(
    city: City, database: PgDatabase, sensors: list[Sensor]
) -> None:
    with shown_on_failure(city):
        start(city, "workers first")
        victim = city.processes[0]
        sender = Sender(city, sensors)
        posting = sender.in_background(20, between=0.05)
        post_until_stored(database, posting)
        victim.kill()
        time.sleep(1.0)  # devices keep posting: partition 0's readings wait for a successor
        waiting = len(sender.acknowledged) - len(database.stored_readings())
        victim.start()
        posting.join(timeout=120)
        assert_exactly_acknowledged(city, database, sender)
        assert victim.starts == 2
        assert waiting > 0, "no acknowledged reading waited for the restarted worker"


def test_a_nats_server_restart_mid_stream_loses_and_duplicates_nothing(
    city: City, database: PgDatabase, sensors: list[Sensor], own_nats_server: NatsServer
) -> None:
    with shown_on_failure(city):
        start(city, "serve first")
        sender = Sender(city, sensors)
        posting = sender.in_background(20, between=0.05)
        post_until_stored(database, posting)
        own_nats_server.restart()
        posting.join(timeout=120)
        assert_exactly_acknowledged(city, database, sender)


def test_the_database_unreachable_for_a_while_loses_and_duplicates_nothing(
    city: City, database: PgDatabase, sensors: list[Sensor]
) -> None:
    proxy = TcpProxy(database.port, database.host)
    proxy.open()
    city.worker_database_url = database.url_via("127.0.0.1", proxy.port)
    try:
        with shown_on_failure(city):
            start(city, "workers first")
            sender = Sender(city, sensors)
            posting = sender.in_background(20, between=0.05)
            post_until_stored(database, posting)
            proxy.close()
            at_refusal = len(database.stored_readings())
            time.sleep(6.0)
            waiting = len(sender.acknowledged) - len(database.stored_readings())
            proxy.open()
            posting.join(timeout=120)
            assert_exactly_acknowledged(city, database, sender)
            assert waiting > 0, "no acknowledged reading waited for the database"
            assert at_refusal < len(sender.acknowledged)
    finally:
        proxy.close()


def test_a_poison_message_is_dead_lettered_and_its_partition_carries_on(
    city: City, database: PgDatabase, sensors: list[Sensor]
) -> None:
    with shown_on_failure(city):
        start(city, "workers first")
        # Events no worker can store: one whose cells do not fit the readings table, one
        # that is not an event at all. Both go to partition 0, before real readings.
        poison = dataclasses.replace(
            batch(2, stream="power.substation"),
            device_ids=("aq-00", "aq-00"),
            cells=("8" * 40, "8" * 40),
        )
        publisher = NatsEventLog(city.nats_url, "CIVICGUARD", partitions=1)
        try:
            publisher.publish([poison])
        finally:
            publisher.close()
        _publish_raw(city.nats_url, "civicguard.events.0", b"\x00 not an event")
        sender = Sender(city, sensors)
        sender.rounds(3)
        assert_exactly_acknowledged(city, database, sender)
        letters = _wait_for(database.dead_letters, 2)
        assert sorted(reason for reason, _, _ in letters) == ["unprocessable_event"] * 2
        assert any("aq-00" in device for _, device, _ in letters)


def test_a_replayed_file_is_stored_by_the_partition_workers(
    city: City, database: PgDatabase, sensors: list[Sensor], tmp_path: Path
) -> None:
    with shown_on_failure(city):
        start(city, "workers first")
        now = time.time()
        lines = [
            {
                "device": sensor.device_id,
                "seq": seq,
                "ts": now - 60 + seq,
                "values": {"voltage": 11.0, "frequency": 50.0, "load": 20.0},
            }
            for sensor in sensors
            for seq in range(1, 21)
        ]
        recorded = tmp_path / "recorded.jsonl"
        recorded.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
        city.cli("replay", str(recorded))
        rows = wait_until_stored(database, len(lines))
        assert sorted(rows) == sorted((str(r["device"]), int(r["seq"])) for r in lines)  # type: ignore[call-overload]
        found = consumers(city.nats_url)
        assert sorted(found) == ["workers-0", "workers-1"], "replay consumed events itself"


def _publish_raw(url: str, subject: str, data: bytes) -> None:
    import asyncio

    async def send() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().publish(subject, data)
        finally:
            await nc.close()

    asyncio.run(send())


def _wait_for(look: object, n: int, timeout: float = 60.0) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout
    found: list[tuple[str, str, str]] = []
    while time.monotonic() < deadline:
        found = look()  # type: ignore[operator]
        if len(found) >= n:
            return found
        time.sleep(0.2)
    return found


def test_ingest_answers_503_with_retry_after_while_nats_is_away(
    city: City, sensors: list[Sensor], own_nats_server: NatsServer
) -> None:
    import httpx

    with shown_on_failure(city):
        city.wait_serving(city.serve())
        own_nats_server.stop()
        sender = Sender(city, sensors[:1])
        with httpx.Client(timeout=60) as client:
            response = client.post(
                f"{city.url}/api/v1/ingest",
                json=sender.body(sensors[0]),
                headers={"Authorization": f"Bearer {sensors[0].secret}"},
            )
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1

"""Nothing outlives its retention: the sweeper, on SQLite and PostgreSQL, with a manual clock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from civicguard.catalog.loader import demo_catalog
from civicguard.clock import ManualClock
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import ReadingBatch, Reason, Rejection, Transport
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.privacy.pseudonyms import key_name
from civicguard.privacy.retention import RetentionSweeper, default_targets
from civicguard.respond.model import Incident, IncidentStatus
from civicguard.store import schema
from civicguard.store.lifecycle import (
    KeyEventRepository,
    RetentionRepository,
    RetentionRunRepository,
)
from civicguard.store.repositories import Store

DAY = 86_400.0
NOW = 1_790_000_000.0
CATALOG = demo_catalog()
RETENTION = {s.name: s.retention_days * DAY for s in CATALOG.streams}
DEAD_LETTERS = CATALOG.dead_letter_retention_s
STREAMS = ["traffic.anpr", "presence.wifi", "citizen.safety_app", "power.substation"]
#: Ages in days, none equal to a retention, so that every row is clearly in or out.
AGES = [0.5, 1.5, 2.5, 6.0, 8.0, 29.0, 31.0, 364.0, 366.0]


def batch(stream: str, ages: list[float], first_seq: int) -> ReadingBatch:
    n = len(ages)
    ts = np.array([NOW - a * DAY for a in ages])
    return ReadingBatch(
        stream=stream,
        fields=("x",),
        device_ids=(f"dev-{stream}",) * n,
        seq=np.arange(first_seq, first_seq + n, dtype=np.int64),
        ts=ts,
        received_at=ts,
        values=np.ones((n, 1)),
        text={},
        cells=("cell",) * n,
        transport=Transport.HTTP,
    )


def alert(stream: str, age: float, incident: str | None = None) -> Alert:
    return Alert(
        detector="band",
        kind="out_of_band",
        severity=Severity.HIGH,
        title=f"{stream} alert",
        stream=stream,
        device_id=f"dev-{stream}",
        cell="cell",
        ts=NOW - age * DAY,
        created_at=NOW - age * DAY,
        evidence={"seq": 1, "plate": "ps_0123"},
        explanation="test alert",
        incident_id=incident,
    )


def incident(name: str, age: float) -> Incident:
    return Incident(
        id=name,
        opened_at=NOW - age * DAY,
        updated_at=NOW - age * DAY,
        status=IncidentStatus.RESOLVED,
        severity="high",
        title=f"incident {name}",
        cell="cell",
        district="Centro",
        alert_count=2,
        acknowledged_by="operator-ana",
        acknowledged_at=NOW - age * DAY,
        resolved_by="operator-luis",
        resolved_at=NOW - age * DAY,
        note="called the owner of the van",
    )


def rows(store: Store, table) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def sweeper(store: Store, clock: ManualClock, keys: MemoryKeyStore) -> RetentionSweeper:
    journal = KeyEventRepository(store.engine)
    targets = default_targets(CATALOG, RetentionRepository(store.engine), keys, journal)
    return RetentionSweeper(targets, clock, RetentionRunRepository(store.engine))


def fill(store: Store, keys: MemoryKeyStore) -> None:
    for i, stream in enumerate(STREAMS):
        store.readings.write([batch(stream, AGES, first_seq=i * 100)])
    store.incidents.upsert(incident("gone", 31.0))
    store.incidents.upsert(incident("live", 3.0))
    alerts = [alert(s, a) for s in STREAMS for a in AGES]
    alerts += [alert("retired.stream", a) for a in (29.0, 31.0)]  # a stream no longer declared
    alerts += [alert("traffic.anpr", 31.0, "gone"), alert("citizen.safety_app", 2.5, "gone")]
    alerts += [alert("traffic.anpr", 29.0, "live"), alert("citizen.safety_app", 3.0, "live")]
    store.alerts.write(alerts)
    store.dead_letters.write(
        [
            Rejection(
                reason=Reason.OUT_OF_RANGE,
                detail="test",
                transport=Transport.HTTP,
                received_at=NOW - a * DAY,
                stream=s,
                payload=b"{}",
            )
            for s in [*STREAMS, None]
            for a in AGES
        ]
    )
    for stream, ended in [
        ("traffic.anpr", 31.0),
        ("traffic.anpr", 29.0),
        ("citizen.safety_app", 2.5),
        ("citizen.safety_app", 1.5),
    ]:
        end = NOW - ended * DAY
        keys.get_or_create(key_name(stream, end - DAY, end))
    for other in ("subject/abc", "sign/consent-receipts", "seal/device-secrets"):
        keys.get_or_create(other)


def test_nothing_outlives_its_retention(store: Store) -> None:
    clock = ManualClock(NOW)
    keys = MemoryKeyStore()
    fill(store, keys)
    report = sweeper(store, clock, keys).run()

    readings = rows(store, schema.readings)
    assert readings, "young readings must stay"
    for r in readings:
        assert NOW - r["ts"] < RETENTION[r["stream"]], r
    assert len(readings) == sum(a * DAY < RETENTION[s] for s in STREAMS for a in AGES)

    alerts = rows(store, schema.alerts)
    for a in alerts:
        limit = RETENTION.get(a["stream"], DEAD_LETTERS)
        assert NOW - a["ts"] < limit, (a["stream"], (NOW - a["ts"]) / DAY)
    assert {a["incident_id"] for a in alerts} == {None, "live"}
    assert sum(a["stream"] == "retired.stream" for a in alerts) == 1  # 29 d kept, 31 d gone

    letters = rows(store, schema.dead_letters)
    for d in letters:
        limit = min(RETENTION[d["stream"]], DEAD_LETTERS) if d["stream"] else DEAD_LETTERS
        assert NOW - d["received_at"] < limit, d
    expected = sum(a * DAY < min(RETENTION[s], DEAD_LETTERS) for s in STREAMS for a in AGES)
    expected += sum(a * DAY < DEAD_LETTERS for a in AGES)
    assert len(letters) == expected

    incidents = {i["id"]: i for i in rows(store, schema.incidents)}
    assert set(incidents) == {"gone", "live"}  # skeletons stay for statistics
    gone, live = incidents["gone"], incidents["live"]
    assert (gone["note"], gone["acknowledged_by"], gone["resolved_by"]) == ("", None, None)
    assert (gone["title"], gone["status"]) == ("incident gone", "resolved")
    assert live["note"] and live["acknowledged_by"] == "operator-ana"

    alive = set(keys.names())
    assert {k for k in alive if not k.startswith("pseudonym/")} == {
        "subject/abc",
        "sign/consent-receipts",
        "seal/device-secrets",
    }
    end = NOW - 29.0 * DAY
    assert {k for k in alive if k.startswith("pseudonym/")} == {
        key_name("traffic.anpr", end - DAY, end),
        key_name("citizen.safety_app", NOW - 2.5 * DAY, NOW - 1.5 * DAY),
    }
    destroyed = rows(store, schema.key_events)
    assert sorted(e["event"] for e in destroyed) == ["destroyed", "destroyed"]

    assert report.removed["pseudonym_keys"] == 2
    assert report.removed["incident_personal_fields"] == 1
    assert report.removed["readings"] == len(STREAMS) * len(AGES) - len(readings)
    assert RetentionRunRepository(store.engine).totals() == report.removed
    # A second sweep at the same time finds nothing more.
    assert sweeper(store, clock, keys).run().total == 0


def test_the_clock_moving_on_sweeps_what_was_young(store: Store) -> None:
    clock = ManualClock(NOW)
    keys = MemoryKeyStore()
    fill(store, keys)
    sweep = sweeper(store, clock, keys)
    sweep.run()
    clock.advance(400 * DAY)
    sweep.run()
    assert rows(store, schema.readings) == []
    assert rows(store, schema.alerts) == []
    assert rows(store, schema.dead_letters) == []
    assert all(i["note"] == "" for i in rows(store, schema.incidents))
    assert not [k for k in keys.names() if k.startswith("pseudonym/")]


class Consents:
    """A target another package would register: counts what it was asked to sweep."""

    name = "consents"

    def __init__(self) -> None:
        self.swept: list[float] = []

    def sweep(self, now: float) -> int:
        self.swept.append(now)
        return 3


class Broken:
    name = "broken"

    def sweep(self, now: float) -> int:
        raise RuntimeError("table is locked")


def test_registered_targets_run_and_a_failing_one_does_not_stop_the_others(
    store: Store,
) -> None:
    clock = ManualClock(NOW)
    sweep = sweeper(store, clock, MemoryKeyStore())
    consents = Consents()
    sweep.register(Broken())
    sweep.register(consents)
    with pytest.raises(ValueError, match="already registered"):
        sweep.register(Consents())
    report = sweep.run()
    assert consents.swept == [NOW]
    assert report.removed["consents"] == 3
    assert "table is locked" in report.failed["broken"]
    assert any("broken: FAILED" in line for line in report.lines())


def test_the_schedule_sweeps_until_stopped(store: Store) -> None:
    clock = ManualClock(NOW)
    sweep = sweeper(store, clock, MemoryKeyStore())
    consents = Consents()
    sweep.register(consents)
    stop = threading.Event()
    thread = sweep.start(stop, interval_s=0.02)
    deadline = time.monotonic() + 10
    while len(consents.swept) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(consents.swept) >= 3
    with pytest.raises(ValueError, match="positive"):
        sweep.start(stop, interval_s=0)


def test_cli_retention_run_prints_what_it_removed(tmp_path: Path, monkeypatch) -> None:
    from civicguard.cli import app
    from civicguard.platform import Platform
    from civicguard.settings import Settings

    monkeypatch.delenv("CIVICGUARD_MASTER_KEY", raising=False)
    monkeypatch.delenv("CIVICGUARD_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    platform = Platform.build(Settings(data_dir=data))
    now = time.time()
    old = batch("citizen.safety_app", [3.0, 1.0], first_seq=1)
    shifted = ReadingBatch(
        **{**{f: getattr(old, f) for f in old.__dataclass_fields__}, "ts": old.ts - NOW + now}
    )
    platform.store.readings.write([shifted])
    platform.close()
    result = CliRunner().invoke(app, ["retention", "run", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "readings: 1 removed" in result.output
    assert "pseudonym_keys: 0 removed" in result.output


def test_the_platform_sweeps_at_start_and_stops_with_it(platform) -> None:
    """``serve`` and ``demo`` call start_retention: a sweep at once, then on the interval."""
    runs = RetentionRunRepository(platform.store.engine)
    assert runs.last() is None
    platform.start_retention()
    deadline = time.monotonic() + 10
    while runs.last() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runs.last() == platform.clock.now()
    assert set(runs.totals()) >= {"readings", "alerts", "dead_letters", "pseudonym_keys"}
    platform.close()
    assert not any(t.name == "civicguard-retention" and t.is_alive() for t in threading.enumerate())

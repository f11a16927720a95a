"""Every repository on SQLite and PostgreSQL: what is written is read back the same."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np
import pytest

from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch, Reason, Rejection, Transport
from civicguard.respond.model import Incident, IncidentStatus
from civicguard.store.repositories import Store

T0 = 1_790_000_000.0


def traffic_batch(rows: list[tuple[str, int, float, str, float, float | None]]) -> ReadingBatch:
    """A traffic.counter batch from (device, seq, ts, cell, vehicles, mean_speed or None)."""
    return ReadingBatch(
        stream="traffic.counter",
        fields=("vehicles", "mean_speed"),
        device_ids=tuple(r[0] for r in rows),
        seq=np.array([r[1] for r in rows], dtype=np.int64),
        ts=np.array([r[2] for r in rows], dtype=np.float64),
        received_at=np.array([r[2] + 0.5 for r in rows], dtype=np.float64),
        values=np.array(
            [[r[4], np.nan if r[5] is None else r[5]] for r in rows], dtype=np.float64
        ).reshape(len(rows), 2),
        text={},
        cells=tuple(r[3] for r in rows),
        transport=Transport.HTTP,
    )


def tank_batch(device: str, seqs: range, cell: str = "cell-w") -> ReadingBatch:
    """A water.tank batch with a pseudonymous text field, one reading per second."""
    n = len(seqs)
    return ReadingBatch(
        stream="water.tank",
        fields=("level",),
        device_ids=(device,) * n,
        seq=np.array(list(seqs), dtype=np.int64),
        ts=np.array([T0 + s for s in seqs], dtype=np.float64),
        received_at=np.array([T0 + s + 0.1 for s in seqs], dtype=np.float64),
        values=np.array([[1.5 + s] for s in seqs], dtype=np.float64).reshape(n, 1),
        text={"operator": [f"pn_{s:04x}" for s in seqs]},
        cells=(cell,) * n,
        transport=Transport.MQTT,
    )


# --- devices ---------------------------------------------------------------------------------


def test_devices_add_all_and_revoke(store: Store) -> None:
    substation = Device(
        id="sub-01",
        stream="power.substation",
        lat=21.88,
        lon=-102.29,
        district="Centro",
        label="Substation Centro",
    )
    pump = Device(id="pump-07", stream="water.pump", lat=21.87, lon=-102.3)
    store.devices.add(substation, b"\x00sealed-1\xff", T0)
    store.devices.add_many([(pump, b"sealed-2")], T0 + 1)

    assert store.devices.all() == [(pump, b"sealed-2"), (substation, b"\x00sealed-1\xff")]

    assert store.devices.revoke("pump-07", T0 + 5) is True
    assert store.devices.revoke("no-such-device", T0 + 5) is False
    revoked = {d.id: d for d, _ in store.devices.all()}
    assert revoked["pump-07"].revoked is True
    assert revoked["sub-01"].revoked is False


def test_devices_duplicate_id_is_refused(store: Store) -> None:
    device = Device(id="tank-1", stream="water.tank", lat=21.9, lon=-102.3)
    store.devices.add(device, b"one", T0)
    with pytest.raises(ValueError, match="already exists"):
        store.devices.add(dataclasses.replace(device, label="again"), b"two", T0 + 1)
    assert store.devices.all() == [(device, b"one")]


# --- readings --------------------------------------------------------------------------------


def test_readings_round_trip_with_absent_fields_and_text(store: Store) -> None:
    written = store.readings.write(
        [
            traffic_batch(
                [("tc-1", 1, T0, "cell-a", 12, 48.5), ("tc-1", 2, T0 + 1, "cell-a", 3, None)]
            ),
            tank_batch("tank-1", range(1, 3)),
        ]
    )
    assert written == 4
    rows = store.readings.query(stream="traffic.counter")
    assert [
        (r["device_id"], r["seq"], r["ts"], r["received_at"], r["cell"], r["values"]) for r in rows
    ] == [
        ("tc-1", 2, T0 + 1, T0 + 1.5, "cell-a", {"vehicles": 3.0}),
        ("tc-1", 1, T0, T0 + 0.5, "cell-a", {"vehicles": 12.0, "mean_speed": 48.5}),
    ]
    tank = store.readings.query(device_id="tank-1")
    assert [r["values"] for r in tank] == [
        {"level": 3.5, "operator": "pn_0002"},
        {"level": 2.5, "operator": "pn_0001"},
    ]
    assert {r["stream"] for r in tank} == {"water.tank"}


def test_a_reading_written_twice_is_stored_once(store: Store) -> None:
    first = tank_batch("tank-1", range(0, 50))
    assert store.readings.write([first]) == 50
    # The event log redelivers the batch, overlapping with new readings.
    assert store.readings.write([first, tank_batch("tank-1", range(40, 60))]) == 10
    assert store.readings.write([first]) == 0
    assert store.readings.count() == 60
    # Inside one write a key repeated is also stored once; the first copy wins.
    twice = traffic_batch([("tc-9", 1, T0, "c", 1, 1.0), ("tc-9", 1, T0, "c", 2, 2.0)])
    assert store.readings.write([twice]) == 1
    assert [r["values"]["vehicles"] for r in store.readings.query(device_id="tc-9")] == [1.0]
    assert store.readings.count() == 61


def test_same_seq_on_different_devices_is_two_readings(store: Store) -> None:
    assert (
        store.readings.write([tank_batch("tank-1", range(5)), tank_batch("tank-2", range(5))]) == 10
    )
    assert store.readings.count() == 10


def test_readings_query_filters(store: Store) -> None:
    store.readings.write(
        [
            traffic_batch(
                [(f"tc-{i % 3}", i, T0 + i, f"cell-{i % 2}", i, 30.0) for i in range(12)]
            ),
            tank_batch("tank-1", range(100, 104), cell="cell-0"),
        ]
    )

    def keys(**filters: Any) -> list[tuple[str, int]]:
        return [(r["device_id"], r["seq"]) for r in store.readings.query(**filters)]

    assert keys(device_id="tc-1") == [("tc-1", 10), ("tc-1", 7), ("tc-1", 4), ("tc-1", 1)]
    assert keys(stream="traffic.counter", cell="cell-0", since=T0 + 4, until=T0 + 10) == [
        ("tc-2", 8),
        ("tc-0", 6),
        ("tc-1", 4),
    ]
    assert keys(cell="cell-0", since=T0 + 100) == [
        ("tank-1", 103),
        ("tank-1", 102),
        ("tank-1", 101),
        ("tank-1", 100),
    ]
    assert keys(stream="water.tank", until=T0 + 101) == [("tank-1", 100)]
    assert keys(stream="traffic.counter", limit=2) == [("tc-2", 11), ("tc-1", 10)]
    assert keys(stream="air.quality") == []


def test_max_seq_per_device(store: Store) -> None:
    assert store.readings.max_seq() == {}
    store.readings.write([tank_batch("tank-1", range(3, 9)), tank_batch("tank-2", range(2))])
    store.readings.write([tank_batch("tank-1", range(0, 4))])
    assert store.readings.max_seq() == {"tank-1": 8, "tank-2": 1}


def test_empty_write_stores_nothing(store: Store) -> None:
    assert store.readings.write([]) == 0
    assert store.readings.write([tank_batch("tank-1", range(0))]) == 0
    assert store.readings.count() == 0


def test_large_write_in_one_call(store: Store) -> None:
    batches = [tank_batch(f"tank-{d}", range(500)) for d in range(8)]
    assert store.readings.write(batches) == 4000
    assert store.readings.write(batches[3:5]) == 0
    assert store.readings.count() == 4000
    assert store.readings.max_seq() == {f"tank-{d}": 499 for d in range(8)}


# --- dead letters ----------------------------------------------------------------------------


def test_dead_letters_write_query_and_count(store: Store) -> None:
    store.dead_letters.write([])
    rejections = [
        Rejection(
            reason=Reason.MALFORMED_JSON,
            detail="expecting value",
            transport=Transport.HTTP,
            received_at=T0,
            payload=b"{not json",
        ),
        Rejection(
            reason=Reason.OUT_OF_RANGE,
            detail="level 99 > 12",
            transport=Transport.MQTT,
            received_at=T0 + 1,
            device_id="tank-1",
            stream="water.tank",
            seq=7,
            index=2,
            payload=b'{"seq": 7, "values": {"level": 99}}',
        ),
        Rejection(
            reason=Reason.OUT_OF_RANGE,
            detail="level -1 < 0",
            transport=Transport.MQTT,
            received_at=T0 + 2,
            device_id="tank-1",
            stream="water.tank",
            seq=8,
            payload=b"\xff\xfe",
        ),
    ]
    store.dead_letters.write(rejections)

    assert store.dead_letters.count_by_reason() == {"malformed_json": 1, "out_of_range": 2}
    newest = store.dead_letters.query()
    assert [r["detail"] for r in newest] == ["level -1 < 0", "level 99 > 12", "expecting value"]
    assert newest[0]["payload"] == "\ufffd\ufffd"
    second = newest[1]
    assert {
        k: second[k]
        for k in (
            "received_at",
            "transport",
            "reason",
            "device_id",
            "stream",
            "seq",
            "idx",
            "payload",
        )
    } == {
        "received_at": T0 + 1,
        "transport": "mqtt",
        "reason": "out_of_range",
        "device_id": "tank-1",
        "stream": "water.tank",
        "seq": 7,
        "idx": 2,
        "payload": '{"seq": 7, "values": {"level": 99}}',
    }
    assert newest[2]["device_id"] is None
    assert [r["seq"] for r in store.dead_letters.query(reason="out_of_range", limit=1)] == [8]


# --- alerts and incidents --------------------------------------------------------------------


def make_incident(**changes: Any) -> Incident:
    base = Incident(
        id="inc-1",
        opened_at=T0,
        updated_at=T0,
        status=IncidentStatus.OPEN,
        severity="high",
        title="Tank level falling fast",
        cell="cell-w",
        district="Centro",
        alert_count=1,
    )
    return dataclasses.replace(base, **changes)


def make_alert(**changes: Any) -> Alert:
    base = Alert(
        detector="rate",
        kind="level_drop",
        severity=Severity.HIGH,
        title="Tank level falling fast",
        stream="water.tank",
        device_id="tank-1",
        cell="cell-w",
        ts=T0,
        created_at=T0 + 1,
        lat=21.9,
        lon=-102.3,
        evidence={
            "readings": [{"ts": T0, "level": 4.25}, {"ts": T0 + 1, "level": 2.0}],
            "baseline": {"mean": 4.1, "n": 600},
            "score": 7.5,
            "flag": True,
            "note": "café ±",
            "missing": None,
        },
        explanation="Level fell from 4.25 to 2 m in 1 s (score 7.5, detector rate).",
    )
    return dataclasses.replace(base, **changes)


def test_alerts_round_trip_json_evidence(store: Store) -> None:
    store.incidents.upsert(make_incident())
    alert = make_alert(incident_id="inc-1")
    store.alerts.write([alert])
    store.alerts.write([])

    assert store.alerts.get(alert.id) == alert
    assert store.alerts.get("no-such-alert") is None


def test_alerts_query_filters_newest_first(store: Store) -> None:
    store.incidents.upsert(make_incident())
    a1 = make_alert(id="a1", created_at=T0 + 1, severity=Severity.LOW, incident_id="inc-1")
    a2 = make_alert(id="a2", created_at=T0 + 2, stream="power.substation", device_id=None)
    a3 = make_alert(id="a3", created_at=T0 + 3, severity=Severity.CRITICAL, incident_id="inc-1")
    store.alerts.write([a1, a2, a3])

    def ids(**filters: Any) -> list[str]:
        return [a.id for a in store.alerts.query(**filters)]

    assert ids() == ["a3", "a2", "a1"]
    assert ids(since=T0 + 2) == ["a3", "a2"]
    assert ids(severity="low") == ["a1"]
    assert ids(stream="water.tank") == ["a3", "a1"]
    assert ids(incident_id="inc-1", limit=1) == ["a3"]
    assert store.alerts.get("a2") == a2


def test_incidents_upsert_get_query_unresolved(store: Store) -> None:
    opened = make_incident()
    store.incidents.upsert(opened)
    assert store.incidents.get("inc-1") == opened
    assert store.incidents.get("inc-x") is None

    acknowledged = dataclasses.replace(
        opened,
        status=IncidentStatus.ACKNOWLEDGED,
        updated_at=T0 + 60,
        alert_count=3,
        acknowledged_by="operator1",
        acknowledged_at=T0 + 60,
        note="crew on the way",
    )
    store.incidents.upsert(acknowledged)
    assert store.incidents.get("inc-1") == acknowledged

    resolved = make_incident(
        id="inc-2",
        opened_at=T0 + 100,
        updated_at=T0 + 200,
        status=IncidentStatus.RESOLVED,
        resolved_by="operator2",
        resolved_at=T0 + 200,
    )
    later = make_incident(id="inc-3", opened_at=T0 + 300, updated_at=T0 + 300)
    store.incidents.upsert(resolved)
    store.incidents.upsert(later)

    assert [i.id for i in store.incidents.query()] == ["inc-3", "inc-2", "inc-1"]
    assert [i.id for i in store.incidents.query(status="resolved")] == ["inc-2"]
    assert [i.id for i in store.incidents.query(limit=1)] == ["inc-3"]
    assert sorted(i.id for i in store.incidents.unresolved()) == ["inc-1", "inc-3"]
    assert store.incidents.get("inc-2") == resolved


# --- users -----------------------------------------------------------------------------------


def test_users_add_get_all_and_duplicates(store: Store) -> None:
    store.users.add("zoe", "scrypt$hash-z", "operator", T0)
    store.users.add("ana", "scrypt$hash-a", "dpo", T0 + 1)
    with pytest.raises(ValueError, match="already exists"):
        store.users.add("ana", "other", "admin", T0 + 2)

    assert store.users.get("ana") == {
        "username": "ana",
        "password_hash": "scrypt$hash-a",
        "role": "dpo",
        "created_at": T0 + 1,
        "disabled": False,
    }
    assert store.users.get("nobody") is None
    assert store.users.all() == [
        {"username": "ana", "role": "dpo", "created_at": T0 + 1, "disabled": False},
        {"username": "zoe", "role": "operator", "created_at": T0, "disabled": False},
    ]


def test_concurrent_writers_store_each_reading_once(store: Store) -> None:
    # Two workers handed overlapping redeliveries at the same time, as after a consumer restart.
    batches = [tank_batch(f"tank-{d}", range(0, 300)) for d in range(4)]
    overlapping = [tank_batch(f"tank-{d}", range(200, 400)) for d in range(4)]
    start = threading.Barrier(2)
    written: list[int] = []

    def worker(work: list[ReadingBatch]) -> None:
        start.wait()
        written.extend(store.readings.write([batch]) for batch in work)

    threads = [
        threading.Thread(target=worker, args=(batches,)),
        threading.Thread(target=worker, args=(overlapping,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(written) == store.readings.count() == 4 * 400
    assert store.readings.max_seq() == {f"tank-{d}": 399 for d in range(4)}


def test_alert_marks_keep_history_and_the_latest_counts(store: Store) -> None:
    from civicguard.detect.model import AlertMark, Verdict

    store.alerts.write([make_alert(id="a1"), make_alert(id="a2")])
    store.alerts.write([make_alert(id="a3", detector="x")])

    def mark(alert_id: str, verdict: Verdict, at: float, detector: str = "rate") -> AlertMark:
        m = AlertMark(
            alert_id=alert_id,
            detector=detector,
            kind="level_drop",
            verdict=verdict,
            marked_by="operator",
            marked_at=at,
            note=f"at {at:g}",
        )
        store.marks.add(m)
        return m

    first = mark("a1", Verdict.FALSE, T0)
    second = mark("a1", Verdict.TRUE, T0 + 5)
    other = mark("a2", Verdict.FALSE, T0 + 1)
    assert store.marks.query(alert_id="a1") == [second, first]
    assert store.marks.query(detector="x") == []
    assert sorted(store.marks.latest(), key=lambda m: m.alert_id) == [second, other]
    assert store.marks.alerts_by_detector() == {"rate": 2, "x": 1}

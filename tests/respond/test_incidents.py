"""Alerts group into incidents by place and time; incidents go open -> acknowledged -> resolved."""

from __future__ import annotations

import h3
import pytest

from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Reason, Transport
from civicguard.respond.incidents import IncidentDesk, TransitionError
from civicguard.respond.model import Incident, IncidentStatus

HERE = h3.latlng_to_cell(21.8818, -102.2960, 10)
NEARBY = h3.latlng_to_cell(21.8820, -102.2962, 10)
FAR = h3.latlng_to_cell(21.8700, -102.3100, 10)


def _alert(
    cell: str,
    at: float,
    severity: Severity = Severity.MEDIUM,
    title: str = "t",
    device_id: str | None = "sub-1",
) -> Alert:
    return Alert(
        detector="test",
        kind="test",
        severity=severity,
        title=title,
        stream="power.substation",
        device_id=device_id,
        cell=cell,
        ts=at,
        created_at=at,
        evidence={"value": 1.0},
        explanation="Value 1 seen (score 1, detector test).",
    )


def test_alerts_in_one_area_and_window_share_an_incident(platform) -> None:
    t = platform.clock.now()
    a, b, c = platform.desk.file(
        [_alert(HERE, t), _alert(NEARBY, t + 30, Severity.CRITICAL, "worse"), _alert(FAR, t + 31)]
    )
    assert a.incident_id == b.incident_id != c.incident_id
    incident = platform.store.incidents.get(a.incident_id)
    assert (incident.alert_count, incident.severity, incident.title) == (2, "critical", "worse")
    stored = platform.store.alerts.query(incident_id=a.incident_id)
    assert {x.id for x in stored} == {a.id, b.id}


def test_a_quiet_area_opens_a_new_incident_after_the_window(platform) -> None:
    t = platform.clock.now()
    (first,) = platform.desk.file([_alert(HERE, t)])
    (later,) = platform.desk.file([_alert(HERE, t + platform.desk.window_s + 1)])
    assert first.incident_id != later.incident_id


# --- alerts without a place --------------------------------------------------------------------


def test_placeless_alerts_of_different_devices_open_different_incidents(platform) -> None:
    t = platform.clock.now()
    a, b = platform.desk.file(
        [_alert("", t, device_id="pump-1"), _alert("", t + 1, device_id="pump-2")]
    )
    assert a.incident_id != b.incident_id
    assert platform.store.incidents.get(a.incident_id).group_key == "device:pump-1"


def test_placeless_alerts_of_one_device_within_the_window_share_an_incident(platform) -> None:
    t = platform.clock.now()
    a, other, b = platform.desk.file(
        [
            _alert("", t, device_id="pump-1"),
            _alert("", t + 1, device_id="pump-2"),
            _alert("", t + 300, device_id="pump-1"),
        ]
    )
    assert a.incident_id == b.incident_id != other.incident_id
    incident = platform.store.incidents.get(a.incident_id)
    assert (incident.alert_count, incident.cell) == (2, "")


def test_a_placed_alert_does_not_join_the_incident_of_its_device_without_a_place(platform) -> None:
    t = platform.clock.now()
    placeless, here, nearby_other = platform.desk.file(
        [_alert("", t), _alert(HERE, t + 1), _alert(NEARBY, t + 2, device_id="sub-2")]
    )
    assert placeless.incident_id != here.incident_id == nearby_other.incident_id
    incident = platform.store.incidents.get(here.incident_id)
    assert incident.group_key == incident.cell == h3.cell_to_parent(HERE, 8)


def test_stranger_bursts_at_the_mqtt_and_http_doors_open_different_incidents(platform) -> None:
    clock = platform.clock
    for transport in (Transport.MQTT, Transport.HTTP, Transport.MQTT):
        for _ in range(5):  # the detector's default burst: 5 failures within 60 s
            platform.ingest.refuse(Reason.BAD_CREDENTIALS, "bad token", transport)
            clock.advance(1.0)
        clock.advance(61.0)  # the next round is a new burst
    while platform.processor.run_once(timeout=0.0):
        pass
    bursts = sorted(
        (a for a in platform.store.alerts.query() if a.detector == "auth_failures"),
        key=lambda a: a.created_at,
    )
    assert [(a.cell, a.device_id, a.evidence["transport"]) for a in bursts] == [
        ("", None, "mqtt"),
        ("", None, "http"),
        ("", None, "mqtt"),
    ]
    mqtt, http, mqtt_again = (a.incident_id for a in bursts)
    assert mqtt == mqtt_again != http


def test_after_a_restart_a_placeless_alert_joins_its_devices_incident(platform) -> None:
    t = platform.clock.now()
    mine, other = platform.desk.file(
        [_alert("", t, device_id="pump-1"), _alert("", t + 10, device_id="pump-2")]
    )
    desk = IncidentDesk(platform.store.incidents, platform.store.alerts, platform.clock)
    (again,) = desk.file([_alert("", t + 20, device_id="pump-1")])
    assert again.incident_id == mine.incident_id != other.incident_id
    assert platform.store.incidents.get(mine.incident_id).alert_count == 2


def _stored(platform, id_: str, at: float) -> Incident:
    """An open incident near HERE as stored before migration 0008 (no group key)."""
    incident = Incident(
        id=id_,
        opened_at=at,
        updated_at=at,
        status=IncidentStatus.OPEN,
        severity="medium",
        title="t",
        cell=h3.cell_to_parent(HERE, 8),
        district="",
        alert_count=1,
    )
    platform.store.incidents.upsert(incident)
    return incident


def test_after_a_restart_incidents_stored_without_a_key_group_by_their_area(platform) -> None:
    t = platform.clock.now()
    old = _stored(platform, "before-0008", t)
    assert platform.store.incidents.get(old.id).group_key == ""
    desk = IncidentDesk(platform.store.incidents, platform.store.alerts, platform.clock)
    placed, placeless = desk.file([_alert(NEARBY, t + 5), _alert("", t + 6)])
    assert placed.incident_id == old.id != placeless.incident_id


def test_after_a_restart_alerts_join_the_latest_incident_of_their_key(platform) -> None:
    t = platform.clock.now()
    latest = _stored(platform, "latest", t - 100)
    _stored(platform, "stale", t - 1000)  # stored after the latest, never acknowledged nor resolved
    desk = IncidentDesk(platform.store.incidents, platform.store.alerts, platform.clock)
    (alert,) = desk.file([_alert(HERE, t)])
    assert alert.incident_id == latest.id


def test_life_cycle_records_who_and_when(platform, clock) -> None:
    (alert,) = platform.desk.file([_alert(HERE, clock.now())])
    clock.advance(60)
    acked = platform.desk.acknowledge(alert.incident_id, "olga", "on my way")
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == (
        IncidentStatus.ACKNOWLEDGED,
        "olga",
        clock.now(),
    )
    with pytest.raises(TransitionError):
        platform.desk.acknowledge(alert.incident_id, "olga")
    clock.advance(60)
    done = platform.desk.resolve(alert.incident_id, "raj", "door secured")
    assert (done.status, done.resolved_by, done.resolved_at) == (
        IncidentStatus.RESOLVED,
        "raj",
        clock.now(),
    )
    assert "on my way" in done.note and "door secured" in done.note
    with pytest.raises(TransitionError):
        platform.desk.resolve(alert.incident_id, "raj")
    (again,) = platform.desk.file([_alert(HERE, clock.now())])
    assert again.incident_id != alert.incident_id


def test_unknown_incident(platform) -> None:
    with pytest.raises(KeyError):
        platform.desk.acknowledge("nope", "olga")


def test_a_failing_detector_costs_its_own_alerts_only(platform, provision, caplog) -> None:
    import orjson

    from civicguard.detect.base import Detector
    from civicguard.ingest.model import Transport

    class Broken(Detector):
        name = "broken"

        def process(self, batch, now):
            raise IndexError("a bug")

        def tick(self, now):
            raise IndexError("another bug")

    platform.processor.detectors.insert(0, Broken())
    door, _ = provision("access.door")
    reading = {
        "seq": 1,
        "ts": platform.clock.now(),
        "values": {"open": True, "access_granted": False},
    }
    platform.ingest.submit(door, orjson.dumps(reading), Transport.HTTP)
    platform.processor.run_once(timeout=0)
    platform.processor.tick()
    assert platform.store.readings.count() == 1
    assert [a.kind for a in platform.store.alerts.query()] == ["door_forced"]
    assert "detector broken failed in process" in caplog.text


def test_incidents_name_the_district_of_a_device_provisioned_at_any_time(platform, provision):
    import orjson

    from civicguard.ingest.model import Transport

    door, _ = provision("access.door")  # provisioned after the platform was built
    reading = {
        "seq": 1,
        "ts": platform.clock.now(),
        "values": {"open": True, "access_granted": False},
    }
    platform.ingest.submit(door, orjson.dumps(reading), Transport.HTTP)
    platform.processor.run_once(timeout=0)
    (incident,) = platform.store.incidents.query()
    assert incident.district == door.district == "Centro"

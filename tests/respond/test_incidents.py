"""Alerts group into incidents by place and time; incidents go open -> acknowledged -> resolved."""

from __future__ import annotations

import h3
import pytest

from civicguard.detect.model import Alert, Severity
from civicguard.respond.incidents import TransitionError
from civicguard.respond.model import IncidentStatus

HERE = h3.latlng_to_cell(21.8818, -102.2960, 10)
NEARBY = h3.latlng_to_cell(21.8820, -102.2962, 10)
FAR = h3.latlng_to_cell(21.8700, -102.3100, 10)


def _alert(cell: str, at: float, severity: Severity = Severity.MEDIUM, title: str = "t") -> Alert:
    return Alert(
        detector="test",
        kind="test",
        severity=severity,
        title=title,
        stream="power.substation",
        device_id="sub-1",
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

"""Physical security: doors held open, and entries into restricted zones outside their hours."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import AlertRule, Catalog, Zone, ZoneKind
from civicguard.clock import ManualClock
from civicguard.detect.doors import DoorHeldOpenDetector
from civicguard.detect.model import Alert
from civicguard.detect.restricted import RestrictedZoneDetector
from civicguard.detect.rules import RuleDetector
from civicguard.geo import EARTH_RADIUS_M
from civicguard.ingest.model import Device, ReadingBatch, Transport
from civicguard.platform import Platform

from .traffic import START, CityTraffic

CITY_TZ = ZoneInfo("America/Mexico_City")
#: 03:00 and 10:00 local time in the demo city on 22 September 2026.
NIGHT = datetime(2026, 9, 22, 3, 0, tzinfo=CITY_TZ).timestamp()
MORNING = datetime(2026, 9, 22, 10, 0, tzinfo=CITY_TZ).timestamp()


def square(
    name: str, kind: ZoneKind, lat: float, lon: float, half_m: float = 30.0, **extra: Any
) -> Zone:
    """A square zone of side ``2 * half_m`` metres centred on (lat, lon)."""
    dlat = math.degrees(half_m / EARTH_RADIUS_M)
    dlon = dlat / math.cos(math.radians(lat))
    ring = (
        (lat - dlat, lon - dlon),
        (lat - dlat, lon + dlon),
        (lat + dlat, lon + dlon),
        (lat + dlat, lon - dlon),
        (lat - dlat, lon - dlon),
    )
    return Zone(name=name, title=name.replace("_", " ").title(), kind=kind, polygon=ring, **extra)


def with_zones(*zones: Zone, timezone: str = "America/Mexico_City") -> Catalog:
    """The demo catalog with only ``zones``."""
    return dataclasses.replace(demo_catalog(), zones=zones, timezone=timezone)


def readings(
    traffic: CityTraffic, stream: str, rows: list[tuple[int, float, dict[str, float]]]
) -> ReadingBatch:
    """A batch of ``stream``: (device index, ts, field overrides) per reading, normal otherwise."""
    index = np.array([r[0] for r in rows])
    ts = np.array([r[1] for r in rows], dtype=np.float64)
    batch = traffic.batch(stream, ts, index, np.arange(len(rows)) + int(ts.min()))
    values = batch.values.copy()
    for i, (_, _, override) in enumerate(rows):
        for name, value in override.items():
            values[i, batch.fields.index(name)] = value
    return dataclasses.replace(batch, values=values)


def door_run(
    traffic: CityTraffic,
    detector: DoorHeldOpenDetector,
    opened: dict[int, tuple[float, float]],
    seconds: int,
    start: float = START,
    chunk: int = 5,
) -> list[Alert]:
    """Every door reports each second; door ``i`` is open over [a, b) s of ``opened[i]``."""
    alerts: list[Alert] = []
    doors = len(traffic.devices["access.door"])
    for first in range(0, seconds, chunk):
        rows = []
        for second in range(first, min(first + chunk, seconds)):
            for i in range(doors):
                a, b = opened.get(i, (math.inf, math.inf))
                rows.append((i, start + second, {"open": float(a <= second < b)}))
        now = start + min(first + chunk, seconds) - 1 + 0.2
        alerts += detector.process(readings(traffic, "access.door", rows), now)
    return alerts


@pytest.fixture
def doors() -> CityTraffic:
    return CityTraffic(demo_catalog(), per_stream=3, streams=("access.door",))


def test_a_door_open_past_its_limit_alerts_once_per_opening(doors: CityTraffic) -> None:
    detector = DoorHeldOpenDetector(demo_catalog(), doors.lookup)
    limit = demo_catalog().stream("access.door").held_open_after_s
    assert limit == 30.0
    # Door 0 open from 10 s to 70 s, again 90-125 s; door 1 open for 5 s; door 2 shut.
    alerts = door_run(doors, detector, {0: (10, 70), 1: (20, 25)}, 90)
    alerts += door_run(doors, detector, {0: (0, 35)}, 40, start=START + 90)
    assert [a.device_id for a in alerts] == ["access-door-000", "access-door-000"]
    first, second = alerts
    assert first.ts == START + 10 + 30  # the first reading that has it open for 30 s
    assert second.ts == START + 90 + 30
    assert first.kind == "door_held_open" and first.severity.value == "medium"
    assert first.evidence["held_open_s"] == 30.0 and first.evidence["limit_s"] == 30.0
    assert first.evidence["opened_at"] == START + 10
    assert first.evidence["readings"][0]["ts"] == START + 10
    assert first.title.startswith("Door held open for 30 s at door")
    assert "open for 30 s" in first.explanation and "30 s a door may stay open" in first.explanation


def test_the_tick_alerts_when_an_open_door_stops_reporting(doors: CityTraffic) -> None:
    detector = DoorHeldOpenDetector(demo_catalog(), doors.lookup)
    # Door 2 opens at 3 s, then nothing arrives: the clock measures from the last batch (3.2 s).
    door_run(doors, detector, {2: (3, 100)}, 4)
    received = START + 3 + 0.05  # the batch helper receives 50 ms after the reading time
    assert detector.tick(received + 29.0) == []
    (late,) = detector.tick(received + 31.0)
    assert late.device_id == "access-door-002"
    assert late.evidence["held_open_s"] == pytest.approx(31.0)
    assert late.created_at == received + 31.0
    assert "no reading has said it closed" in late.explanation
    assert detector.tick(received + 60.0) == []  # one alert per opening
    assert door_run(doors, detector, {2: (0, 10)}, 12, start=START + 100) == []


def test_a_door_left_open_while_all_is_quiet_is_raised_on_time_by_the_clock(
    doors: CityTraffic,
) -> None:
    """Door 0 opens and nothing at all comes through after it; the pipeline ticks every 0.5 s."""
    detector = DoorHeldOpenDetector(demo_catalog(), doors.lookup)
    opening = readings(doors, "access.door", [(0, START + 3, {"open": 1.0})])
    assert detector.process(opening, START + 3.2) == []
    received = float(opening.received_at[0])
    ticks = [START + 3.5 + 0.5 * k for k in range(200)]
    raised = [(now, alert) for now in ticks for alert in detector.tick(now)]
    ((now, alert),) = raised  # once the limit has passed by the clock, and once only
    assert received + 30.0 <= now <= received + 31.0
    assert alert.device_id == "access-door-000"
    assert alert.evidence["held_open_s"] == pytest.approx(now - received)


@pytest.mark.parametrize("behind", [0.0, 40.0])
def test_a_door_reporting_only_changes_is_raised_once_processing_passes_its_limit(
    behind: float,
) -> None:
    """Two doors report only their changes while two pumps report every second.

    The pipeline processes each second ``behind`` seconds after it (40 s: a backlog longer
    than the doors' 30 s limit). Door 0 opens at 3 s and stays open; door 1 opens at 10 s and
    closes at 12 s. Door 0 is raised when the readings of 30 s after its opening come through,
    neither before (its close could be waiting in the backlog) nor later (the pumps' readings
    show how far the platform has got, though no door reports).
    """
    traffic = CityTraffic(demo_catalog(), per_stream=2, streams=("access.door", "water.pump"))
    detector = DoorHeldOpenDetector(demo_catalog(), traffic.lookup)
    changes = {3: [(0, 1.0)], 10: [(1, 1.0)], 12: [(1, 0.0)]}
    raised: list[tuple[float, Alert]] = []
    for second in range(60):
        now = START + second + 0.2 + behind
        ts = START + second
        pumps = readings(traffic, "water.pump", [(0, ts, {}), (1, ts, {})])
        batches = [pumps]
        if second in changes:
            rows = [(door, ts, {"open": state}) for door, state in changes[second]]
            batches.append(readings(traffic, "access.door", rows))
        for batch in batches:
            raised += [(now, a) for a in detector.process(batch, now)]
        raised += [(now, a) for a in detector.tick(now)]
    ((now, alert),) = raised
    assert alert.device_id == "access-door-000"
    received = START + 3 + 0.05  # the batch helper receives 50 ms after the reading time
    assert received + behind + 30.0 <= now <= received + behind + 31.0
    assert alert.evidence["held_open_s"] == pytest.approx(30.0, abs=1.0)


def test_a_zone_sets_a_stricter_limit(doors: CityTraffic) -> None:
    inner = doors.devices["access.door"][1]
    vault = square("vault", ZoneKind.RESTRICTED, inner.lat, inner.lon, allowed_hours=(0, 24),
                   held_open_after_s=10.0)  # fmt: skip
    detector = DoorHeldOpenDetector(with_zones(vault), doors.lookup)
    alerts = door_run(doors, detector, {0: (0, 25), 1: (0, 25)}, 30)
    (alert,) = alerts
    assert alert.device_id == inner.id
    assert alert.evidence["limit_s"] == 10.0 and alert.evidence["limit_from"] == "vault"
    assert alert.severity.value == "high" and alert.evidence["restricted_zone"] is True
    assert alert.ts == START + 10


def test_late_readings_do_not_reopen_a_door(doors: CityTraffic) -> None:
    detector = DoorHeldOpenDetector(demo_catalog(), doors.lookup)
    door_run(doors, detector, {}, 50)
    stale = [(0, START + s, {"open": 1.0}) for s in range(0, 45)]  # 45 s open, but all old
    assert detector.process(readings(doors, "access.door", stale), START + 50) == []
    assert detector.tick(START + 200) == []


def test_entry_into_a_restricted_zone_outside_hours() -> None:
    traffic = CityTraffic(demo_catalog(), per_stream=2, streams=("access.door", "traffic.anpr"))
    door, camera = traffic.devices["access.door"][0], traffic.devices["traffic.anpr"][0]
    plant = square("plant", ZoneKind.RESTRICTED, door.lat, door.lon, half_m=60.0,
                   allowed_hours=(6, 21))  # fmt: skip
    yard = square("yard", ZoneKind.RESTRICTED, camera.lat, camera.lon, allowed_hours=(22, 5))
    assert door.id != traffic.devices["access.door"][1].id
    detector = RestrictedZoneDetector(with_zones(plant, yard), traffic.lookup)

    def doors_at(ts: float, open_: float) -> list[Alert]:
        rows = [(0, ts, {"open": open_}), (1, ts, {"open": 1.0})]
        return detector.process(readings(traffic, "access.door", rows), ts + 0.1)

    assert doors_at(MORNING, 1.0) == []  # inside the plant's hours
    assert doors_at(NIGHT, 0.0) == []  # closed: no entry
    (entry,) = doors_at(NIGHT + 60, 1.0)  # door 1 is outside every zone
    assert entry.device_id == door.id and entry.kind == "restricted_zone_after_hours"
    assert entry.evidence["zone"] == "plant" and entry.evidence["local_hour"] == 3
    assert entry.evidence["allowed_hours"] == [6, 21]
    assert "Plant" in entry.title and "06:00-21:00" in entry.explanation
    assert doors_at(NIGHT + 70, 1.0) == []  # the same episode
    assert len(doors_at(NIGHT + 200, 1.0)) == 1  # a new one
    # The yard allows entry at night (22:00 to 05:00), not in the morning.
    plates = [(0, NIGHT, {}), (1, MORNING, {})]
    assert detector.process(readings(traffic, "traffic.anpr", plates), MORNING) == []
    (read,) = detector.process(readings(traffic, "traffic.anpr", [(0, MORNING + 5, {})]), MORNING)
    assert read.device_id == camera.id and read.evidence["local_hour"] == 10
    assert "read a number plate" in read.explanation


def test_hours_follow_the_catalog_time_zone() -> None:
    traffic = CityTraffic(demo_catalog(), per_stream=1, streams=("access.door",))
    door = traffic.devices["access.door"][0]
    plant = square("plant", ZoneKind.RESTRICTED, door.lat, door.lon, allowed_hours=(6, 21))
    # 03:00 in Mexico City is 09:00 UTC: inside the hours if the city ran on UTC.
    for tz, expected in (("America/Mexico_City", 1), ("UTC", 0)):
        detector = RestrictedZoneDetector(with_zones(plant, timezone=tz), traffic.lookup)
        batch = readings(traffic, "access.door", [(0, NIGHT, {"open": 1.0})])
        assert len(detector.process(batch, NIGHT)) == expected


def drain(platform: Platform) -> None:
    """Run the pipeline over everything published, then let its detectors see the clock."""
    while platform.processor.run_once(timeout=0.0):
        pass
    platform.processor.tick()


def test_held_door_and_night_entry_through_the_pipeline(
    platform: Platform, clock: ManualClock
) -> None:
    """Doors in the demo catalog's data centre (20 s limit, entry 06:00-21:00) send readings."""
    (centre,) = [z for z in platform.catalog.zones if z.name == "data.centre"]
    lat = sum(p[0] for p in centre.polygon[:-1]) / 4
    lon = sum(p[1] for p in centre.polygon[:-1]) / 4
    inside = Device(id="door-dc", stream="access.door", lat=lat, lon=lon, district="Centro")
    outside = Device(id="door-out", stream="access.door", lat=lat + 0.01, lon=lon,
                     district="Centro")  # fmt: skip
    platform.registry.provision_many([inside, outside], clock.now())
    alerts: list[dict[str, Any]] = []
    platform.feed.subscribe(alerts.append)
    seq = {inside.id: 0, outside.id: 0}

    def second(opened: bool) -> None:
        for device in (inside, outside):
            seq[device.id] += 1
            values = {"open": opened, "access_granted": True}
            body = orjson.dumps({"seq": seq[device.id], "ts": clock.now(), "values": values})
            assert platform.ingest.submit(device, body, Transport.HTTP).accepted == 1
        drain(platform)
        clock.advance(1.0)

    # Morning (08:13 local): both doors held open for 25 s, then closed.
    for _ in range(25):
        second(opened=True)
    second(opened=False)
    held = [a for a in alerts if a["detector"] == "door_held_open"]
    assert [a["device_id"] for a in held] == ["door-dc"]
    assert held[0]["evidence"]["limit_from"] == "data.centre"
    assert held[0]["explanation"]
    assert not [a for a in alerts if a["detector"] == "restricted_zone"]
    # The next night at 03:00 local, a badge opens both doors for 3 s.
    clock.set(NIGHT)
    for _ in range(3):
        second(opened=True)
    (entry,) = [a for a in alerts if a["detector"] == "restricted_zone"]
    assert entry["device_id"] == "door-dc" and entry["evidence"]["zone"] == "data.centre"
    assert entry["evidence"]["local_hour"] == 3


def test_a_door_closed_in_time_is_not_raised_while_its_close_waits_in_a_backlog(
    platform: Platform, clock: ManualClock
) -> None:
    """The pipeline runs 40 s behind three doors (a backlog; their limit is 30 s).

    Door 0 is open for 25 s and door 1 for 40 s. When door 0's opening comes through, 40 s
    have passed by the clock, but its close is still waiting in the backlog: only door 1 is
    held open.
    """
    traffic = CityTraffic(demo_catalog(), per_stream=3, streams=("access.door",))
    devices = traffic.devices["access.door"]
    platform.registry.provision_many(devices, clock.now())
    alerts: list[dict[str, Any]] = []
    platform.feed.subscribe(alerts.append)
    opened = {0: (50, 75), 1: (50, 90)}
    for second in range(140):
        for i, device in enumerate(devices):
            a, b = opened.get(i, (math.inf, math.inf))
            body = traffic.body(device, second + 1, clock.now(), open=a <= second < b)
            assert platform.ingest.submit(device, body, Transport.HTTP).accepted == 1
        if second >= 40:  # one second of readings is processed per second, 40 s late
            platform.processor.run_once(max_events=len(devices), timeout=0.0)
            platform.processor.tick()
        clock.advance(1.0)
    assert platform.processor.log.pending() == 3 * 40  # still 40 s behind at the end
    held = [a for a in alerts if a["detector"] == "door_held_open"]
    assert [a["device_id"] for a in held] == [devices[1].id]


def _door_reading(ts: float) -> ReadingBatch:
    return ReadingBatch(
        stream="access.door",
        fields=("open", "access_granted"),
        device_ids=("door-x",),
        seq=np.array([1], dtype=np.int64),
        ts=np.array([ts]),
        received_at=np.array([ts]),
        values=np.array([[1.0, 0.0]]),
        text={},
        cells=("8b49a2b5a0d8fff",),
        transport=Transport.HTTP,
    )


@pytest.mark.parametrize(
    ("local_hour", "alerts"),
    [(2, 1), (14, 0)],  # 02:00 local is 08:00 UTC, 14:00 local is 20:00 UTC: UTC would invert
)
def test_rule_hours_are_the_catalogs_local_hours(local_hour: int, alerts: int) -> None:
    base = demo_catalog()
    door = base.stream("access.door")
    night_only = AlertRule(
        name="forced_at_night",
        title="Forced at night",
        severity="high",
        when=(("open", 1.0), ("access_granted", 0.0)),
        outside_hours=(7, 19),
    )
    streams = tuple(
        dataclasses.replace(s, rules=(night_only,)) if s is door else s for s in base.streams
    )
    catalog = dataclasses.replace(base, streams=streams, timezone="America/Mexico_City")
    detector = RuleDetector(catalog, lambda _id: None)
    ts = datetime(2026, 9, 22, local_hour, 0, tzinfo=CITY_TZ).timestamp()
    assert len(detector.process(_door_reading(ts), ts)) == alerts

"""Fleet cyber monitors through the real ingest path: auth-failure bursts, wrong place, clock
skew and impossible values, each ending as an alert in the store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import h3
import httpx
import orjson
import pytest

from civicguard.clock import ManualClock
from civicguard.detect.model import Alert
from civicguard.ingest.model import Device, Reason, Transport
from civicguard.ingest.registry import sign
from civicguard.platform import Platform
from civicguard.web.server import WebServer

from ..conftest import CITY_LAT, CITY_LON

#: One thousandth of a degree of latitude, in metres (mean Earth radius 6 371 008.8 m).
MILLIDEGREE_M = 6_371_008.8 * math.pi / 180 / 1000


def drain(platform: Platform) -> None:
    """Run everything in the event log through the pipeline."""
    while platform.processor.run_once(timeout=0.0):
        pass


def alerts(platform: Platform, detector: str) -> list[Alert]:
    """Stored alerts of ``detector``, oldest first."""
    found = [a for a in platform.store.alerts.query(limit=1000) if a.detector == detector]
    return sorted(found, key=lambda a: a.created_at)


def body(seq: int, ts: float, **envelope: Any) -> bytes:
    """One normal substation reading."""
    values = {"voltage": 11.0, "frequency": 50.0, "load": 12.0}
    return orjson.dumps({"seq": seq, "ts": ts, "values": values, **envelope})


@pytest.fixture
def web(platform: Platform) -> Iterator[httpx.Client]:
    """An HTTP client of the platform's web app on a free loopback port."""
    server = WebServer(platform, "127.0.0.1", 0)
    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


# --- authentication-failure bursts -------------------------------------------------------------


def test_a_burst_of_bad_signatures_raises_one_alert_per_burst(
    platform: Platform, clock: ManualClock, provision, web: httpx.Client
) -> None:
    device, secret = provision("power.substation", "sub-guessed")
    payload = body(1, clock.now())
    forged = "0" * 64
    for attempt in range(9):
        response = web.post(
            "/api/v1/ingest",
            content=payload,
            headers={"X-Device-Id": device.id, "X-Signature": forged},
        )
        assert response.status_code == 401
        clock.advance(1.0)
        drain(platform)
        assert len(alerts(platform, "auth_failures")) == (0 if attempt < 4 else 1)
    (burst,) = alerts(platform, "auth_failures")
    assert burst.device_id == device.id and burst.severity.value == "high"
    assert burst.stream == "power.substation" and burst.cell
    assert burst.evidence["failures"] == 5
    assert burst.evidence["reasons"] == {"bad_signature": 5}
    assert burst.evidence["span_s"] == pytest.approx(4.0)
    # Nothing the sender presented is kept in the alert.
    for text in (orjson.dumps(burst.evidence).decode(), burst.explanation, burst.title):
        assert forged not in text and "11.0" not in text
    # The device itself still gets in with the right signature.
    good = web.post(
        "/api/v1/ingest",
        content=payload,
        headers={"X-Device-Id": device.id, "X-Signature": sign(secret, payload)},
    )
    assert good.status_code == 202
    # After a quiet minute the next burst is a new one.
    clock.advance(61.0)
    for _ in range(5):
        web.post("/api/v1/ingest", content=payload, headers={"Authorization": "Bearer nope"})
        web.post(
            "/api/v1/ingest",
            content=payload,
            headers={"X-Device-Id": device.id, "X-Signature": forged},
        )
    drain(platform)
    bursts = alerts(platform, "auth_failures")
    assert [a.device_id for a in bursts] == [device.id, device.id, None]
    stranger = bursts[2]
    assert stranger.evidence["counted_per"] == "transport"
    assert stranger.evidence["reasons"] == {"bad_credentials": 5}
    assert stranger.stream == "" and stranger.severity.value == "medium"


def test_unknown_ids_count_per_transport_and_slow_failures_do_not(
    platform: Platform, clock: ManualClock
) -> None:
    # A sender inventing a new device id on every try is still one burst on its transport.
    for i in range(5):
        detail = f"device 'x{i}' is not provisioned"
        platform.ingest.refuse(Reason.UNKNOWN_DEVICE, detail, Transport.MQTT, b"{}", f"x{i}")
        clock.advance(2.0)
    # A device failing once every 20 s (a stale secret on a slow retry) is no burst on HTTP.
    for _ in range(8):
        platform.ingest.refuse(Reason.BAD_CREDENTIALS, "bad token", Transport.HTTP)
        clock.advance(20.0)
    drain(platform)
    (burst,) = alerts(platform, "auth_failures")
    assert burst.device_id is None and burst.evidence["transport"] == "mqtt"
    assert burst.evidence["reasons"] == {"unknown_device": 5}
    assert "x0" not in burst.title + burst.explanation
    assert platform.store.dead_letters.count_by_reason()["bad_credentials"] == 8


# --- wrong place -------------------------------------------------------------------------------


def test_a_device_reporting_from_elsewhere_raises_one_alert(
    platform: Platform, clock: ManualClock, provision, web: httpx.Client
) -> None:
    device, secret = provision("power.substation", "sub-moved")
    headers = {"Authorization": f"Bearer {secret}"}
    home = {"lat": CITY_LAT + 0.0003, "lon": CITY_LON}  # 33 m off: GNSS error
    away = {"lat": CITY_LAT + 0.01, "lon": CITY_LON}  # 1.1 km north
    plan = [home, home, away, home, away, away, away, away, away]
    for seq, where in enumerate(plan, start=1):
        response = web.post(
            "/api/v1/ingest", content=body(seq, clock.now(), position=where), headers=headers
        )
        assert response.status_code == 202, response.text
        clock.advance(1.0)
        drain(platform)
    (moved,) = alerts(platform, "wrong_place")
    assert moved.device_id == device.id and moved.severity.value == "high"
    assert moved.evidence["readings"][0]["seq"] == 7  # the third far position in a row
    assert moved.evidence["distance_m"] == pytest.approx(10 * MILLIDEGREE_M, abs=1.0)
    assert moved.evidence["registered"] == [CITY_LAT, CITY_LON]
    assert moved.evidence["reported"] == [away["lat"], away["lon"]]
    # Readings are stored as usual, without the position.
    stored = platform.store.readings.query(stream="power.substation", limit=100)
    assert len(stored) == len(plan)
    assert str(away["lat"]) not in repr(stored)


def test_personal_streams_keep_only_the_cell_of_a_position(
    platform: Platform, clock: ManualClock, provision
) -> None:
    device, _ = provision("traffic.anpr", "cam-moved")
    far = (CITY_LAT + 0.02, CITY_LON + 0.01)
    values = {"plate": "AGS1234", "lane": 1, "speed": 40.0, "vehicle_class": "car"}
    for seq in range(1, 4):
        reading = {"seq": seq, "ts": clock.now(), "values": values}
        reading["position"] = {"lat": far[0], "lon": far[1]}
        result = platform.ingest.submit(device, orjson.dumps(reading), Transport.HTTP)
        assert result.accepted == 1
        (batch,) = result.batches
        # What leaves ingest is the centre of the position's cell, not the position.
        resolution = platform.catalog.stream("traffic.anpr").h3_resolution
        centre = h3.cell_to_latlng(h3.latlng_to_cell(*far, resolution))
        assert batch.positions is not None
        assert batch.positions[0].tolist() == pytest.approx(list(centre), abs=1e-12)
        assert batch.positions[0].tolist() != list(far)
        clock.advance(1.0)
    drain(platform)
    (moved,) = alerts(platform, "wrong_place")
    assert "reported" not in moved.evidence
    assert moved.evidence["reported_cell_centre"] == pytest.approx(list(centre))
    edge = h3.average_hexagon_edge_length(resolution, unit="m")
    assert moved.evidence["allowed_m"] == pytest.approx(200.0 + edge)


def test_a_malformed_position_is_refused_with_its_reason(
    platform: Platform, clock: ManualClock, provision
) -> None:
    device, _ = provision("power.substation")
    now = clock.now()
    bad = [
        body(1, now, position={"lat": 95.0, "lon": 0.0}),
        body(2, now, position={"lat": "north", "lon": 0.0}),
        body(3, now, position=[21.0, -102.0]),
    ]
    result = platform.ingest.submit(device, b"[" + b",".join(bad) + b"]", Transport.HTTP)
    assert result.accepted == 0
    assert [(r.reason, r.detail) for r in result.rejections] == [
        (Reason.OUT_OF_RANGE, "position.lat: 95 is outside [-90, 90]"),
        (Reason.WRONG_TYPE, "position.lat: expected a finite number of degrees"),
        (Reason.WRONG_TYPE, 'position: expected {"lat": <degrees>, "lon": <degrees>}'),
    ]
    drain(platform)
    assert len(platform.store.dead_letters.query(limit=10)) == 3


# --- clock skew --------------------------------------------------------------------------------


def submit(platform: Platform, device: Device, readings: list[bytes]) -> None:
    """Submit one body; every reading must be accepted."""
    result = platform.ingest.submit(device, b"[" + b",".join(readings) + b"]", Transport.HTTP)
    assert result.accepted == len(readings), result.rejections


def test_a_clock_running_ahead_raises_one_alert_per_episode(
    platform: Platform, clock: ManualClock, provision
) -> None:
    device, _ = provision("power.substation")
    seq = 0

    def second(offset: float) -> None:
        nonlocal seq
        seq += 1
        submit(platform, device, [body(seq, clock.now() + offset)])
        clock.advance(1.0)
        drain(platform)

    for _ in range(5):
        second(0.4)
    second(90.0)
    second(90.0)
    assert alerts(platform, "clock_skew") == []  # two of five observations: median still fine
    second(90.0)
    (skew,) = alerts(platform, "clock_skew")
    assert skew.evidence["median_offset_s"] == pytest.approx(90.0)
    assert skew.evidence["offsets_s"] == pytest.approx([0.4, 0.4, 90.0, 90.0, 90.0])
    assert "ahead of" in skew.title
    for _ in range(10):
        second(90.0)
    assert len(alerts(platform, "clock_skew")) == 1
    for _ in range(3):
        second(0.0)  # time sync restored: the episode ends
    for _ in range(3):
        second(-120.0)
    later = alerts(platform, "clock_skew")
    assert len(later) == 2 and "behind" in later[1].title


def test_a_backlog_upload_is_not_skew(platform: Platform, clock: ManualClock, provision) -> None:
    device, _ = provision("power.substation")
    for upload in range(6):
        # A gateway that was offline sends the last 600 s in one body, newest last.
        now = clock.now()
        first = upload * 600
        submit(platform, device, [body(first + i, now - 599 + i) for i in range(600)])
        clock.advance(600.0)
        drain(platform)
    assert alerts(platform, "clock_skew") == []


def test_readings_refused_for_their_time_count_toward_skew(
    platform: Platform, clock: ManualClock, provision
) -> None:
    device, _ = provision("power.substation")
    for seq in range(1, 4):
        result = platform.ingest.submit(device, body(seq, clock.now() + 600), Transport.HTTP)
        assert [r.reason for r in result.rejections] == [Reason.TIMESTAMP_IN_FUTURE]
        clock.advance(1.0)
    drain(platform)
    (skew,) = alerts(platform, "clock_skew")
    assert skew.evidence["refused_for_time"] == 3
    assert skew.evidence["median_offset_s"] == pytest.approx(600.0)
    assert skew.evidence["readings"][0]["seq"] == 3


# --- impossible values -------------------------------------------------------------------------


def test_an_impossible_value_is_refused_and_raises_an_alert(
    platform: Platform, clock: ManualClock, provision
) -> None:
    device, _ = provision("power.substation")
    for seq in range(1, 6):  # a broken sensor insists for five seconds: one alert
        values = {"voltage": 70.5, "frequency": 50.0, "load": 12.0}
        reading = orjson.dumps({"seq": seq, "ts": clock.now(), "values": values})
        result = platform.ingest.submit(device, reading, Transport.HTTP)
        assert [r.reason for r in result.rejections] == [Reason.OUT_OF_RANGE]
        clock.advance(1.0)
    drain(platform)
    assert platform.store.readings.count() == 0
    assert platform.store.dead_letters.count_by_reason() == {"out_of_range": 5}
    (impossible,) = alerts(platform, "impossible_value")
    assert impossible.device_id == device.id and impossible.severity.value == "high"
    assert impossible.evidence["field"] == "voltage"
    assert impossible.evidence["value"] == 70.5
    assert impossible.evidence["range"] == [0.0, 40.0]
    assert impossible.evidence["readings"][0]["seq"] == 1
    assert "70.5" in impossible.explanation and "0 to 40 kV" in impossible.explanation


def test_a_string_too_long_is_not_an_impossible_value(
    platform: Platform, clock: ManualClock, provision
) -> None:
    device, _ = provision("traffic.anpr")
    values = {"plate": "X" * 40, "lane": 1, "speed": 40.0, "vehicle_class": "car"}
    reading = orjson.dumps({"seq": 1, "ts": clock.now(), "values": values})
    result = platform.ingest.submit(device, reading, Transport.HTTP)
    assert [r.reason for r in result.rejections] == [Reason.OUT_OF_RANGE]
    drain(platform)
    assert alerts(platform, "impossible_value") == []

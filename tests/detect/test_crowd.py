"""Crowds: people per public space against its capacity, and the surge forecast ahead of it."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import ZoneKind
from civicguard.clock import ManualClock
from civicguard.detect.crowd import CrowdOverCapacityDetector
from civicguard.detect.forecast import HoltForecaster, SurgeForecastDetector
from civicguard.detect.model import Alert
from civicguard.ingest.model import Device, Transport
from civicguard.platform import Platform

from .test_physical import drain, readings, square, with_zones
from .traffic import START, CityTraffic


@pytest.fixture
def counters() -> CityTraffic:
    """Four crowd counters 445 m apart in a line; the first three stand in one plaza."""
    return CityTraffic(demo_catalog(), per_stream=4, streams=("crowd.counter",))


def plaza(counters: CityTraffic, **extra: Any) -> Any:
    middle = counters.devices["crowd.counter"][1]
    return square("plaza", ZoneKind.PUBLIC_SPACE, middle.lat, middle.lon, half_m=500.0, **extra)


def feed(
    detector: CrowdOverCapacityDetector | SurgeForecastDetector,
    counters: CityTraffic,
    people: list[list[float]],
    start: float = START,
) -> list[Alert]:
    """Counter ``j`` counts ``people[t][j]`` at second ``t``; five seconds per batch."""
    alerts: list[Alert] = []
    for first in range(0, len(people), 5):
        rows = [
            (j, start + t, {"people": float(count)})
            for t in range(first, min(first + 5, len(people)))
            for j, count in enumerate(people[t])
        ]
        now = start + min(first + 5, len(people)) - 1 + 0.2
        alerts += detector.process(readings(counters, "crowd.counter", rows), now)
    return alerts


def test_a_plaza_over_capacity_alerts_once_per_episode(counters: CityTraffic) -> None:
    detector = CrowdOverCapacityDetector(with_zones(plaza(counters, capacity=3000)),
                                         counters.lookup)  # fmt: skip
    far = 40_000.0  # the fourth counter stands outside the plaza: never counted
    calm = [[500.0, 500.0, 500.0, far]] * 10
    crush = [[500.0, 2500.0, 500.0, far]] * 20
    easing = [[500.0, 1900.0, 500.0, far]] * 5  # 2900: under capacity, not yet clear of it
    clear = [[500.0, 1000.0, 500.0, far]] * 5
    alerts = feed(detector, counters, calm + crush + easing + crush + clear + crush)
    assert len(alerts) == 2
    first = alerts[0]
    assert first.ts == START + 10
    assert first.device_id == counters.devices["crowd.counter"][1].id  # the one that rose
    assert first.evidence["people"] == 3500.0 and first.evidence["capacity"] == 3000
    assert set(first.evidence["counters"]) == {d.id for d in counters.devices["crowd.counter"][:3]}
    assert first.evidence["score"] == pytest.approx(3500 / 3000)
    assert first.kind == "crowd_over_capacity" and first.title.startswith("Plaza over capacity")
    assert "3500 people" in first.explanation and "declared capacity of 3000" in first.explanation
    assert alerts[1].ts == START + 10 + 20 + 5 + 20 + 5


@pytest.mark.parametrize(("density", "capacity"), [(None, 40_000), (2.0, 20_000)])
def test_capacity_follows_area_and_density_limit(
    counters: CityTraffic, density: float | None, capacity: int
) -> None:
    """A 100 m x 100 m square holds 4 people/m2 (Fruin's level E) unless the catalog says."""
    first = counters.devices["crowd.counter"][0]
    small = square("square", ZoneKind.PUBLIC_SPACE, first.lat, first.lon, half_m=50.0,
                   density_limit=density)  # fmt: skip
    detector = CrowdOverCapacityDetector(with_zones(small), counters.lookup)
    under = [[capacity * 0.99, 0.0, 0.0, 0.0]] * 5
    over = [[capacity * 1.01, 0.0, 0.0, 0.0]] * 5
    (alert,) = feed(detector, counters, under + over)
    assert alert.evidence["capacity"] == pytest.approx(capacity, abs=2)
    assert alert.evidence["area_m2"] == pytest.approx(10_000, rel=1e-4)
    assert alert.evidence["density_per_m2"] == pytest.approx(capacity * 1.01 / 10_000, rel=1e-3)


def ramp(seconds: int, calm_s: int, rate: float, rng: np.random.Generator) -> list[list[float]]:
    """Three counters at 500 people (+-10) for ``calm_s``, then each gaining ``rate`` per s."""
    out = []
    for t in range(seconds):
        grown = rate * max(0, t - calm_s)
        out.append([float(round(500 + grown + rng.normal(0, 10))) for _ in range(3)] + [0.0])
    return out


def test_a_surge_is_forecast_before_the_count_crosses(counters: CityTraffic) -> None:
    """1500 people for 5 min, then 6 more each second: capacity 3000 falls 250 s into the rise."""
    steps: list[tuple[float, np.ndarray, np.ndarray]] = []
    detector = SurgeForecastDetector(
        with_zones(plaza(counters, capacity=3000)),
        counters.lookup,
        on_step=lambda ts, totals, forecasts: steps.append((ts, totals, forecasts)),
    )
    people = ramp(900, 300, 2.0, np.random.default_rng(4))
    alerts = feed(detector, counters, people)
    crossing = START + next(t for t, row in enumerate(people) if sum(row[:3]) > 3000)
    (surge,) = alerts
    assert surge.kind == "crowd_surge_expected" and surge.device_id in counters.by_id
    assert START + 300 < surge.ts < crossing
    lead = crossing - surge.ts
    assert lead >= 60.0  # at least a minute of warning
    expected = surge.evidence["expected_crossing_in_s"]
    assert expected == pytest.approx(lead, rel=0.5)
    assert surge.evidence["people"] < 3000 and surge.evidence["capacity"] == 3000
    assert "Holt" in surge.explanation and "3000" in surge.explanation
    # Once the rise is established, the one-minute forecast beats "as many as now" every time.
    actual = {round(ts): totals[0] for ts, totals, _ in steps}
    later = [
        (forecasts[0, 0], totals[0], actual[round(ts) + 60])
        for ts, totals, forecasts in steps
        if ts >= START + 450 and round(ts) + 60 in actual
    ]
    errors = [abs(forecast - truth) / truth for forecast, _, truth in later]
    naive = [abs(now - truth) / truth for _, now, truth in later]
    assert len(errors) > 20 and np.mean(errors) < 0.04
    assert max(errors) < min(naive)


def test_steady_crowds_and_new_counters_raise_nothing(counters: CityTraffic) -> None:
    detector = SurgeForecastDetector(with_zones(plaza(counters, capacity=1800)), counters.lookup)
    rng = np.random.default_rng(5)
    people = [[float(round(500 + rng.normal(0, 15))) for _ in range(3)] + [0.0]
              for _ in range(1800)]  # fmt: skip
    late = [row[:2] for row in people[:600]]  # the third counter joins after ten minutes
    assert feed(detector, counters, late) == []
    assert feed(detector, counters, people[600:], start=START + 600) == []
    assert detector.headcount.members(0) == [d.id for d in counters.devices["crowd.counter"][:3]]


def test_holt_tracks_a_line_and_damps_its_trend() -> None:
    holt = HoltForecaster(1, alpha=0.3, beta=0.1, phi=1.0)
    holt.reset(np.array([True]), np.array([100.0]))
    for k in range(1, 200):
        holt.update(np.array([100.0 + 5.0 * k]))
    assert holt.forecast(np.array([10]))[0, 0] == pytest.approx(100 + 5 * 209, rel=1e-3)
    damped = HoltForecaster(1, alpha=0.3, beta=0.1, phi=0.9)
    damped.level, damped.trend = np.array([0.0]), np.array([1.0])
    # The damped trend adds 0.9 + 0.81 + ... and never more than 0.9 / (1 - 0.9) = 9.
    assert damped.forecast(np.array([2, 1000]))[0].tolist() == pytest.approx([1.71, 9.0])


def test_crowd_alerts_through_the_pipeline(platform: Platform, clock: ManualClock) -> None:
    """Three counters in the demo's Plaza central (capacity 6000) fill it in four minutes."""
    (zone,) = [z for z in platform.catalog.zones if z.name == "plaza.central"]
    lat = sum(p[0] for p in zone.polygon[:-1]) / 5
    lon = sum(p[1] for p in zone.polygon[:-1]) / 5
    devices = [
        Device(id=f"crowd-p{i}", stream="crowd.counter", lat=lat + 1e-5 * i, lon=lon)
        for i in range(3)
    ]
    platform.registry.provision_many(devices, clock.now())
    alerts: list[dict[str, Any]] = []
    platform.feed.subscribe(alerts.append)
    for t in range(460):
        people = 1500 + 5 * max(0, t - 240)  # 4500 in all, then 15 more each second
        for seq, device in enumerate(devices):
            values = {"people": people, "occupancy": 50.0}
            body = orjson.dumps({"seq": t + 1, "ts": clock.now() + 0.01 * seq, "values": values})
            assert platform.ingest.submit(device, body, Transport.HTTP).accepted == 1
        if t % 5 == 4:
            drain(platform)
        clock.advance(1.0)
    drain(platform)
    crossing = 240 + 100  # 4500 + 15 * 100 = 6000; over it one second later
    surge = [a for a in alerts if a["detector"] == "surge_forecast"]
    over = [a for a in alerts if a["detector"] == "crowd_capacity"]
    assert len(surge) == 1 and len(over) == 1
    assert surge[0]["ts"] < over[0]["ts"]
    assert over[0]["ts"] == pytest.approx(START + crossing + 1, abs=0.1)
    assert over[0]["evidence"]["zone"] == "plaza.central" and over[0]["device_id"] in {
        d.id for d in devices
    }
    assert surge[0]["evidence"]["zone"] == "plaza.central" and surge[0]["explanation"]

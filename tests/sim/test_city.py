"""The simulated city: deterministic, big enough, and its normal traffic passes ingest cleanly."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest
from shapely.geometry import Point

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.zones import shape
from civicguard.clock import ManualClock
from civicguard.ingest.model import Transport
from civicguard.ingest.registry import sign
from civicguard.platform import Platform
from civicguard.respond.streets import StreetNetwork, load_streets, synthetic_grid
from civicguard.sim.city import SimulatedCity
from tests.conftest import SHARED_DATA

START = 1_790_000_000.0  # the platform fixture's clock
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
PLATE = re.compile(r"^[A-Z]{3}-\d{3}-[A-Z]$")


@pytest.fixture(scope="module")
def streets() -> StreetNetwork:
    path = SHARED_DATA / "city" / "aguascalientes-centro.osm"
    return load_streets(path) if path.is_file() else synthetic_grid()


def ticks(city: SimulatedCity, n: int, start: float = START) -> list[dict[str, dict[str, object]]]:
    return [city.readings(start + i) for i in range(n)]


def test_same_seed_same_city_and_readings(streets: StreetNetwork) -> None:
    a = SimulatedCity(seed=11, streets=streets, catalog=demo_catalog())
    b = SimulatedCity(seed=11, streets=streets, catalog=demo_catalog())
    assert a.devices == b.devices
    assert ticks(a, 5) == ticks(b, 5)


def test_different_seeds_differ(streets: StreetNetwork) -> None:
    a = SimulatedCity(seed=11, streets=streets, catalog=demo_catalog())
    b = SimulatedCity(seed=12, streets=streets, catalog=demo_catalog())
    assert [(d.lat, d.lon) for d in a.devices] != [(d.lat, d.lon) for d in b.devices]
    assert ticks(a, 2) != ticks(b, 2)


def test_fleet_size_kinds_districts_and_placement(streets: StreetNetwork) -> None:
    city = SimulatedCity(seed=1, streets=streets, catalog=demo_catalog())
    assert len(city.devices) >= 300
    assert len({d.id for d in city.devices}) == len(city.devices)
    kinds = {d.stream for d in city.devices}
    assert len(kinds) >= 8
    assert kinds <= {s.name for s in demo_catalog().streams}
    districts = {d.name for d in city.districts}
    assert len(districts) == 6
    assert "Centro" in districts
    assert {d.district for d in city.devices} == districts
    nodes = streets.graph.nodes(data=True)
    node_places = {(round(data["lat"], 6), round(data["lon"], 6)) for _, data in nodes}
    # Devices stand on street nodes, but for the counters and doors sited in the catalog's zones.
    zones = [shape(z) for z in demo_catalog().zones]
    sited = [d for d in city.devices if any(z.covers(Point(d.lat, d.lon)) for z in zones)]
    assert {d.stream for d in sited} == {"crowd.counter", "access.door"}
    assert all((d.lat, d.lon) in node_places for d in city.devices if d not in sited)


def test_districts_are_stable_across_seeds(streets: StreetNetwork) -> None:
    a = SimulatedCity(seed=1, streets=streets, catalog=demo_catalog())
    b = SimulatedCity(seed=2, streets=streets, catalog=demo_catalog())
    assert a.districts == b.districts


def test_raw_identifiers_in_anpr_and_wifi_payloads(streets: StreetNetwork) -> None:
    city = SimulatedCity(seed=5, streets=streets, catalog=demo_catalog())
    plates: list[str] = []
    macs: list[str] = []
    for tick in ticks(city, 20):
        for device_id, values in tick.items():
            stream = city.device(device_id).stream
            if stream == "traffic.anpr":
                assert PLATE.match(str(values["plate"]))
                plates.append(str(values["plate"]))
            elif stream == "presence.wifi":
                listed = values["macs"]
                assert isinstance(listed, list)
                assert all(MAC.match(m) for m in listed)
                assert values["devices"] == len(listed)
                macs.extend(listed)
    # Drawn from pools, so the same plates and phones come back (what pseudonyms must link).
    assert len(set(plates)) < len(plates)
    assert len(set(macs)) < len(macs)


def test_normal_traffic_stays_inside_normal_bands_and_rates(streets: StreetNetwork) -> None:
    catalog = demo_catalog()
    city = SimulatedCity(seed=9, streets=streets, catalog=catalog)
    history = ticks(city, 120)
    for stream in catalog.streams:
        ids = [d.id for d in city.of_stream(stream.name)]
        if not ids:  # streams of people, not devices (the safety app), are simulated elsewhere
            continue
        for spec in stream.numeric_fields:
            if spec.normal is None and spec.max_rate is None and spec.range is None:
                continue
            series = np.array([[float(t[i][spec.name]) for i in ids] for t in history])
            if spec.range is not None:
                assert series.min() >= spec.range[0] and series.max() <= spec.range[1]
            if spec.normal is not None:
                assert series.min() > spec.normal[0], (stream.name, spec.name)
                assert series.max() < spec.normal[1], (stream.name, spec.name)
            if spec.max_rate is not None:
                # Well under the limit, not just under it: detectors must not see rate alerts.
                assert np.abs(np.diff(series, axis=0)).max() < 0.7 * spec.max_rate, spec.name


def test_doors_are_never_forced_in_normal_traffic(streets: StreetNetwork) -> None:
    city = SimulatedCity(seed=4, streets=streets, catalog=demo_catalog())
    for tick in ticks(city, 60, start=START + 3600 * 6):
        for device_id, values in tick.items():
            if device_id.startswith("door-") and values["open"]:
                assert values["access_granted"] is True


def test_normal_readings_pass_ingest_through_the_signed_path(
    platform: Platform, clock: ManualClock, streets: StreetNetwork
) -> None:
    city = SimulatedCity(seed=3, streets=streets, catalog=platform.catalog)
    secrets = platform.registry.provision_many(city.devices, clock.now())
    accepted = 0
    for _ in range(3):
        now = clock.now()
        for device_id, values in city.readings(now).items():
            body = city.envelope(device_id, now, values)
            device = platform.registry.by_signature(device_id, body, sign(secrets[device_id], body))
            result = platform.ingest.submit(device, body, Transport.SIMULATOR)
            assert result.rejections == [], [r.as_dict() for r in result.rejections]
            accepted += result.accepted
        clock.advance(1.0)
    assert accepted == 3 * len(city.devices)
    while platform.processor.run_once(timeout=0.01):
        pass
    assert platform.store.readings.count() == accepted
    assert platform.store.readings.max_seq()[city.devices[0].id] == 3


def test_envelopes_number_each_device_and_resume(streets: StreetNetwork) -> None:
    city = SimulatedCity(seed=3, streets=streets, catalog=demo_catalog())
    device_id = city.devices[0].id
    values = city.readings(START)[device_id]
    first = orjson.loads(city.envelope(device_id, START, values))
    second = orjson.loads(city.envelope(device_id, START + 1, values))
    assert (first["seq"], second["seq"]) == (1, 2)
    assert set(first) == {"seq", "ts", "values"}
    city.resume({device_id: 500, "not-a-device": 9})
    assert orjson.loads(city.envelope(device_id, START + 2, values))["seq"] == 501


def test_wall_clock_jitter_does_not_skip_readings(streets: StreetNetwork) -> None:
    city = SimulatedCity(seed=3, streets=streets, catalog=demo_catalog())
    jitter = [0.004, 0.001, 0.02, 0.0, 0.3, 0.01]
    counts = [len(city.readings(START + i + j)) for i, j in enumerate(jitter)]
    assert counts == [len(city.devices)] * len(jitter)

"""Scripted scenarios: a schedule that fits the run, each scenario doing what it says."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.clock import ManualClock
from civicguard.ingest.model import Reason, Transport
from civicguard.ingest.registry import sign
from civicguard.platform import Platform
from civicguard.respond.streets import StreetNetwork, load_streets, synthetic_grid
from civicguard.sim.city import SimulatedCity
from civicguard.sim.demo import score
from civicguard.sim.scenarios import (
    CYCLE_KINDS,
    REPLAY_DEPTH,
    TAIL_S,
    Outgoing,
    PlannedScenario,
    ScenarioKind,
    ScenarioPlayer,
    plan_cycle,
)
from tests.conftest import SHARED_DATA

START = 1_790_000_000.0


@pytest.fixture(scope="module")
def streets() -> StreetNetwork:
    path = SHARED_DATA / "city" / "aguascalientes-centro.osm"
    return load_streets(path) if path.is_file() else synthetic_grid()


@pytest.fixture
def city(streets: StreetNetwork) -> SimulatedCity:
    return SimulatedCity(seed=3, streets=streets, catalog=demo_catalog())


@pytest.mark.parametrize("duration", [60.0, 90.0, 300.0])
@pytest.mark.parametrize("seed", [1, 3, 8])
def test_schedule_fits_the_run(city: SimulatedCity, seed: int, duration: float) -> None:
    plans = plan_cycle(city, seed, duration)
    assert {p.kind for p in plans} == set(CYCLE_KINDS)
    starts = [p.at for p in plans]
    assert starts == sorted(starts)
    assert starts[0] == pytest.approx(15.0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) - min(gaps) < 0.01  # evenly spaced
    assert all(p.until <= duration - TAIL_S + 1e-6 for p in plans)
    assert len({p.device_id for p in plans}) == len(plans)
    for plan in plans:
        assert plan.device_id in {d.id for d in city.devices}
    replay = next(p for p in plans if p.kind is ScenarioKind.REPLAYED_MESSAGE)
    assert replay.at > REPLAY_DEPTH


def test_schedule_follows_the_seed(city: SimulatedCity) -> None:
    assert plan_cycle(city, 3, 60.0) == plan_cycle(city, 3, 60.0)
    orders = {tuple(p.kind for p in plan_cycle(city, s, 60.0)) for s in range(6)}
    assert len(orders) > 1


def test_open_ended_runs_repeat_the_cycle_on_other_devices(city: SimulatedCity) -> None:
    first = plan_cycle(city, 3, None, 0)
    second = plan_cycle(city, 3, None, 1)
    assert second[0].at > first[-1].at
    assert [p.device_id for p in first] != [p.device_id for p in second]


def _play(
    city: SimulatedCity, plan: list[PlannedScenario], seconds: int
) -> list[list[dict[str, Any]]]:
    """Decoded messages of the scenario devices, tick by tick, for a player running ``plan``."""
    player = ScenarioPlayer(city, 3, None, plans=plan)
    ticks: list[list[dict[str, Any]]] = []
    for second in range(seconds):
        now = START + second
        out = player.step(float(second), now, city.readings(now))
        targets = {p.device_id for p in plan}
        ticks.append(
            [{"device": m.device_id, **orjson.loads(m.body)} for m in out if m.device_id in targets]
        )
    player.finish(START + seconds)
    return ticks


def test_substation_attack_tank_spoofing_door_and_crowd(city: SimulatedCity) -> None:
    plan = [
        PlannedScenario(
            kind=ScenarioKind.SUBSTATION_ATTACK, device_id="substation-001", at=2, duration=5
        ),
        PlannedScenario(kind=ScenarioKind.TANK_SPOOFING, device_id="tank-001", at=2, duration=5),
        PlannedScenario(
            kind=ScenarioKind.DOOR_FORCED_AFTER_HOURS, device_id="door-001", at=2, duration=5
        ),
        PlannedScenario(kind=ScenarioKind.CROWD_SURGE, device_id="crowd-001", at=2, duration=12),
    ]
    ticks = _play(city, plan, 16)

    def series(device: str, field: str) -> list[Any]:
        return [m["values"][field] for t in ticks for m in t if m["device"] == device]

    freq = series("substation-001", "frequency")
    assert all(49.6 < f < 50.4 for f in freq[:2] + freq[7:])
    assert all(51.1 < f < 51.3 for f in freq[2:7])
    assert all(12.5 < v < 12.7 for v in series("substation-001", "voltage")[2:7])
    level = series("tank-001", "level")
    assert level[2] == pytest.approx(level[1] + 3, abs=0.05)
    assert len(set(level[2:7])) == 1  # flat: a spoofed, frozen reading
    assert len(set(level[7:])) > 1
    opened = series("door-001", "open")
    granted = series("door-001", "access_granted")
    assert opened[2:7] == [True] * 5 and granted[2:7] == [False] * 5
    assert all(granted[7:])
    occ = series("crowd-001", "occupancy")
    assert 35 <= occ[2] <= 46
    assert occ[3] == pytest.approx(occ[2] * 1.15, rel=1e-3)
    assert max(occ[2:14]) == pytest.approx(130.0)
    assert occ[15] < 90


def test_flood_silence_and_replay(city: SimulatedCity) -> None:
    plan = [
        PlannedScenario(kind=ScenarioKind.MESSAGE_FLOOD, device_id="air-001", at=3, duration=4),
        PlannedScenario(kind=ScenarioKind.DEVICE_SILENT, device_id="traffic-001", at=3, duration=5),
        PlannedScenario(
            kind=ScenarioKind.REPLAYED_MESSAGE, device_id="pump-001", at=10, duration=0
        ),
    ]
    ticks = _play(city, plan, REPLAY_DEPTH + 5)
    per_tick = [sum(1 for m in t if m["device"] == "air-001") for t in ticks]
    assert per_tick[:3] == [1, 1, 1] and per_tick[3:7] == [50] * 4 and per_tick[7] == 1
    seqs = [m["seq"] for t in ticks for m in t if m["device"] == "air-001"]
    assert seqs == list(range(1, len(seqs) + 1))  # valid, increasing numbers
    silent = [sum(1 for m in t if m["device"] == "traffic-001") for t in ticks]
    assert silent[:3] == [1, 1, 1] and silent[3:8] == [0] * 5 and silent[8] == 1
    pump = [m for t in ticks for m in t if m["device"] == "pump-001"]
    # Waits for REPLAY_DEPTH messages of history, then re-sends an old one verbatim.
    replayed = [m for m in pump if pump.count(m) == 2]
    assert len(replayed) == 2
    assert replayed[0]["seq"] <= pump[-1]["seq"] - REPLAY_DEPTH


def test_a_minute_of_scenarios_through_the_platform(
    platform: Platform, clock: ManualClock, city: SimulatedCity
) -> None:
    """The whole demo, on a manual clock: every scenario detected, nothing else alerted."""
    secrets = platform.registry.provision_many(city.devices, clock.now())
    alerts: list[dict[str, Any]] = []
    platform.feed.subscribe(alerts.append)
    player = ScenarioPlayer(city, 3, 60.0)
    refused: list[Reason] = []
    start = clock.now()
    for second in range(60):
        now = clock.now()
        messages: list[Outgoing] = player.step(now - start, now, city.readings(now))
        for m in messages:
            device = platform.registry.by_signature(
                m.device_id, m.body, sign(secrets[m.device_id], m.body)
            )
            refused += [
                r.reason
                for r in platform.ingest.submit(device, m.body, Transport.SIMULATOR).rejections
            ]
        while platform.processor.run_once(max_events=4096, timeout=0.0):
            pass
        for _ in range(2):
            clock.advance(0.5)
            platform.processor.tick()
        # No alert runs ahead of the scenario it belongs to: each one raised so far is on
        # the device of a scenario that had begun by the time the alert was raised.
        begun = {r.plan.device_id: r.started_at for r in player.records if r.started_at is not None}
        early = [a for a in alerts if a["created_at"] < begun.get(a["device_id"], float("inf"))]
        assert early == [], f"second {second}"
    player.finish(clock.now())
    assert refused == [Reason.REPLAYED_SEQUENCE]
    outcomes, false = score(player.records, alerts)
    assert len(outcomes) == len(CYCLE_KINDS)
    missed = [o.record.plan.kind.value for o in outcomes if not o.detected]
    assert missed == []
    assert false == []

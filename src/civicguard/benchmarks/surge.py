"""``civicguard bench surge``: how well the surge forecast sees crowds coming, on the simulator.

The simulated city's crowd counters run for some hours of simulated time (no platform, no
wall clock: batches go straight to the detector, one per simulated second). In each public
space, crowd build-ups are scripted one after another: the zone fills over minutes to a peak,
holds, and empties. Some peaks stay under capacity (a forecast that warns of them raises a
false alarm), the others go over it (a warning ahead of the crossing is what the forecast is
for). The figures:

* forecast error at each horizon, mean absolute (people) and mean absolute percentage, over
  every step and over the build-ups alone, beside the naive forecast "as many as now";
* for the alert: build-ups that crossed capacity and were warned of, the lead time between the
  warning and the crossing, and false alarms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from shapely.geometry import Point

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import Catalog
from civicguard.catalog.zones import shape
from civicguard.detect.forecast import SurgeForecastDetector, SurgeSettings
from civicguard.detect.model import Alert
from civicguard.ingest.model import Device, ReadingBatch, Transport
from civicguard.respond.streets import StreetNetwork, city_streets
from civicguard.sim.city import FLEET, SimulatedCity
from civicguard.sim.scenarios import PlannedScenario, ScenarioKind, ScenarioPlayer

STREAM = "crowd.counter"
#: Local noon on 21 September 2026 in the demo city: the afternoon fills towards the evening.
START = 1_790_013_600.0
#: Peaks (occupancy %, about the share of the zone's capacity) build-ups are drawn from.
PEAKS = (60.0, 80.0, 90.0, 115.0, 130.0, 150.0)
#: Warm-up before the first build-up, and the quiet between two in the same zone (s).
WARM_UP_S = 1200.0
QUIET_S = (900.0, 1800.0)
BUILD_UP_S = (1200.0, 2400.0)
#: A warning counts for a build-up from its start to this long after its end.
AFTER_S = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildUp:
    """One scripted build-up in one zone."""

    gauge: int
    at: float
    until: float
    peak: float


@dataclass(slots=True)
class HorizonError:
    """Absolute errors (people) and percentage errors of one forecast at one horizon."""

    absolute: list[float] = field(default_factory=list)
    percent: list[float] = field(default_factory=list)

    def add(self, forecast: np.ndarray, actual: np.ndarray) -> None:
        """Add the errors of ``forecast`` against ``actual``."""
        error = np.abs(forecast - actual)
        self.absolute += error.tolist()
        self.percent += (100 * error / np.maximum(actual, 1.0)).tolist()

    @property
    def mae(self) -> float:
        """Mean absolute error, in people."""
        return float(np.mean(self.absolute)) if self.absolute else float("nan")

    @property
    def mape(self) -> float:
        """Mean absolute percentage error."""
        return float(np.mean(self.percent)) if self.percent else float("nan")


@dataclass(slots=True)
class SurgeReport:
    """Everything ``bench surge`` prints."""

    horizons_s: tuple[float, ...]
    #: (model, scope) -> one HorizonError per horizon; model: holt | naive, scope: all | build-ups.
    errors: dict[tuple[str, str], list[HorizonError]]
    build_ups: int = 0
    crossings: int = 0
    warned: int = 0
    leads_s: list[float] = field(default_factory=list)
    false_alarms: int = 0
    simulated_s: float = 0.0
    seconds: float = 0.0


def plan_build_ups(
    city: SimulatedCity, catalog: Catalog, seed: int, duration: float, gauges: Sequence[str]
) -> tuple[list[BuildUp], list[PlannedScenario]]:
    """Build-ups, one after another in each zone, and the scenarios that play them."""
    rng = np.random.default_rng([seed, 11])
    counters = city.of_stream(STREAM)
    build_ups: list[BuildUp] = []
    plans: list[PlannedScenario] = []
    zones = {z.name: z for z in catalog.zones}
    for g, name in enumerate(gauges):
        polygon = shape(zones[name])
        inside = [d.id for d in counters if polygon.covers(Point(d.lat, d.lon))]
        at = WARM_UP_S + float(rng.uniform(0, QUIET_S[0]))
        while True:
            length = float(rng.uniform(*BUILD_UP_S))
            if at + length > duration:
                break
            peak = float(rng.choice(PEAKS))
            build_ups.append(BuildUp(gauge=g, at=at, until=at + length, peak=peak))
            plans += [
                PlannedScenario(
                    kind=ScenarioKind.CROWD_BUILD_UP,
                    device_id=device_id,
                    at=at,
                    duration=length,
                    peak=peak,
                )
                for device_id in inside
            ]
            at += length + float(rng.uniform(*QUIET_S))
    return build_ups, plans


def _batch(city: SimulatedCity, bodies: list[tuple[str, bytes]], received: float) -> ReadingBatch:
    """The counters' messages of one second as the batch the pipeline would hand over."""
    decoded = [(device_id, orjson.loads(body)) for device_id, body in bodies]
    return ReadingBatch(
        stream=STREAM,
        fields=("people", "occupancy"),
        device_ids=tuple(d for d, _ in decoded),
        seq=np.array([m["seq"] for _, m in decoded], dtype=np.int64),
        ts=np.array([m["ts"] for _, m in decoded], dtype=np.float64),
        received_at=np.full(len(decoded), received),
        values=np.array(
            [[m["values"]["people"], m["values"]["occupancy"]] for _, m in decoded],
            dtype=np.float64,
        ),
        text={},
        cells=tuple("" for _ in decoded),
        transport=Transport.SIMULATOR,
    )


def run_seed(
    seed: int,
    hours: float,
    report: SurgeReport,
    *,
    settings: SurgeSettings,
    streets: StreetNetwork,
    catalog: Catalog,
) -> None:
    """Simulate ``hours`` of one seed's crowds and add its figures to ``report``."""
    city = SimulatedCity(seed=seed, streets=streets, catalog=catalog,
                         fleet={STREAM: FLEET[STREAM]})  # fmt: skip
    steps: list[tuple[float, np.ndarray, np.ndarray]] = []
    by_id = {d.id: d for d in city.devices}

    def lookup(device_id: str) -> Device | None:
        return by_id.get(device_id)

    detector = SurgeForecastDetector(
        catalog,
        lookup,
        settings=settings,
        on_step=lambda ts, totals, forecasts: steps.append((ts, totals, forecasts)),
    )
    gauges = [g.area.zone.name for g in detector.headcount.gauges]
    duration = hours * 3600.0
    build_ups, plans = plan_build_ups(city, catalog, seed, duration, gauges)
    player = ScenarioPlayer(city, seed, duration, plans=plans)
    alerts: list[Alert] = []
    for second in range(int(duration)):
        now = START + second
        out = player.step(float(second), now, city.readings(now))
        batch = _batch(city, [(m.device_id, m.body) for m in out], now + 0.05)
        alerts += detector.process(batch, now + 0.1)
    report.simulated_s += duration
    report.build_ups += len(build_ups)
    _score_forecasts(report, steps, build_ups, settings)
    _score_alerts(report, steps, build_ups, alerts, gauges, detector.headcount.capacity)


def _score_forecasts(
    report: SurgeReport,
    steps: list[tuple[float, np.ndarray, np.ndarray]],
    build_ups: list[BuildUp],
    settings: SurgeSettings,
) -> None:
    actual = {round(ts): totals for ts, totals, _ in steps}
    start = steps[0][0] + settings.min_history_s if steps else 0.0
    for ts, totals, forecasts in steps:
        if ts < start:
            continue
        for k, horizon in enumerate(report.horizons_s):
            target = round(ts + horizon)
            if target not in actual:
                continue
            truth = actual[target]
            during = np.array(
                [any(b.gauge == g and b.at <= target - START <= b.until for b in build_ups)
                 for g in range(len(truth))]
            )  # fmt: skip
            for scope, mask in (("all", np.ones(len(truth), dtype=bool)), ("build-ups", during)):
                if mask.any():
                    report.errors["holt", scope][k].add(forecasts[mask, k], truth[mask])
                    report.errors["naive", scope][k].add(totals[mask], truth[mask])


def _score_alerts(
    report: SurgeReport,
    steps: list[tuple[float, np.ndarray, np.ndarray]],
    build_ups: list[BuildUp],
    alerts: list[Alert],
    gauges: list[str],
    capacity: np.ndarray,
) -> None:
    explained: set[str] = set()
    for b in build_ups:
        window = (START + b.at, START + b.until + AFTER_S)
        crossed = next(
            (ts for ts, totals, _ in steps
             if window[0] <= ts <= window[1] and totals[b.gauge] > capacity[b.gauge]),
            None,
        )  # fmt: skip
        mine = [
            a
            for a in alerts
            if a.evidence["zone"] == gauges[b.gauge] and window[0] <= a.ts <= window[1]
        ]
        explained |= {a.id for a in mine}
        if crossed is None:
            report.false_alarms += len(mine)
            continue
        report.crossings += 1
        before = [a for a in mine if a.ts < crossed]
        if before:
            report.warned += 1
            report.leads_s.append(crossed - before[0].ts)
        report.false_alarms += len(mine) - len(before)
    report.false_alarms += sum(1 for a in alerts if a.id not in explained)


def run_surge_benchmark(
    *,
    seeds: Sequence[int] = (4, 5, 6),
    hours: float = 6.0,
    settings: SurgeSettings | None = None,
    console: Console | None = None,
    streets: StreetNetwork | None = None,
) -> SurgeReport:
    """Run the simulator for every seed, score the forecast and its alert, print the tables."""
    settings = settings or SurgeSettings()
    catalog = demo_catalog()
    streets = streets or city_streets()
    report = SurgeReport(
        horizons_s=settings.horizons_s,
        errors={
            (model, scope): [HorizonError() for _ in settings.horizons_s]
            for model in ("holt", "naive")
            for scope in ("all", "build-ups")
        },
    )
    started = time.perf_counter()
    for seed in seeds:
        run_seed(seed, hours, report, settings=settings, streets=streets, catalog=catalog)
    report.seconds = time.perf_counter() - started
    if console is not None:
        _print(console, report, settings, seeds)
    return report


def _print(
    console: Console, report: SurgeReport, settings: SurgeSettings, seeds: Sequence[int]
) -> None:
    table = Table(
        title=(
            f"Surge forecast error, seeds {', '.join(map(str, seeds))}, "
            f"{report.simulated_s / 3600:g} simulated hours, {report.build_ups} build-ups"
        ),
        box=box.SIMPLE,
    )
    table.add_column("horizon")
    for scope in ("all", "build-ups"):
        for model in ("holt", "naive"):
            table.add_column(f"{scope}: {model} MAE", justify="right")
            table.add_column(f"{scope}: {model} MAPE", justify="right")
    for k, horizon in enumerate(report.horizons_s):
        row = [f"{horizon / 60:g} min"]
        for scope in ("all", "build-ups"):
            for model in ("holt", "naive"):
                e = report.errors[model, scope][k]
                row += [f"{e.mae:.0f}", f"{e.mape:.1f} %"]
        table.add_row(*row)
    console.print(table)
    leads = np.array(report.leads_s) / 60 if report.leads_s else np.array([np.nan])
    console.print(
        f"surge alert ({settings.alert_horizon_s / 60:g} min horizon): {report.warned} of "
        f"{report.crossings} crossings warned ahead, lead median {np.median(leads):.1f} min "
        f"(min {np.min(leads):.1f}, max {np.max(leads):.1f}); false alarms "
        f"{report.false_alarms} over {report.build_ups - report.crossings} build-ups that "
        "stayed under capacity"
    )
    console.print(
        f"holt alpha {settings.alpha}, beta {settings.beta}, phi {settings.phi}, step "
        f"{settings.step_s:g} s; {report.simulated_s / report.seconds:,.0f} simulated s per s"
    )

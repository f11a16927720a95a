"""Crowd surges ahead of time: a short-term forecast of each public space's headcount.

Each zone's headcount (summed over its counters, see :mod:`~civicguard.detect.crowd`) is
sampled on a fixed step and followed by Holt's linear trend method with a damped trend
(Gardner and McKenzie, 1985), all zones at once in NumPy arrays. When the forecast reaches
the zone's capacity within the alert horizon while the count itself is still below it, the
detector raises "surge expected", with the expected time to crossing as its lead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from civicguard.catalog.model import Catalog
from civicguard.detect._support import BoolArray, FloatArray, alert, explain, figure, number
from civicguard.detect.base import Detector
from civicguard.detect.crowd import Timeline, ZoneHeadcount, density_text
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class SurgeSettings:
    """How the surge forecast samples, smooths and decides; ``civicguard bench surge`` scores it."""

    #: Seconds between two samples of a zone's headcount.
    step_s: float = 10.0
    #: Smoothing of the level, of the trend, and the trend's damping per step; chosen with
    #: ``civicguard bench surge`` on seeds 1-3 (the README reports held-out seeds 4-6).
    alpha: float = 0.9
    beta: float = 0.3
    phi: float = 0.95
    #: Horizons (s) the forecast is made for; the bench reports the error at each.
    horizons_s: tuple[float, ...] = (60.0, 300.0, 600.0)
    #: "Surge expected" when the forecast this far ahead reaches capacity.
    alert_horizon_s: float = 600.0
    #: A zone's forecast is trusted only after this much history since its counters last changed.
    min_history_s: float = 180.0
    #: Steps in a row the forecast must stay over capacity: one noisy step is no surge.
    confirm_steps: int = 3
    #: An alerted zone re-arms once its forecast falls under this share of capacity.
    rearm_fraction: float = 0.9
    #: After a gap longer than this (s) the forecast starts afresh.
    max_gap_s: float = 300.0


class HoltForecaster:
    """Holt's damped linear trend over many series at once, one update per step.

    >>> holt = HoltForecaster(2, alpha=0.5, beta=0.5, phi=1.0)
    >>> holt.reset(np.array([True, True]), np.array([10.0, 50.0]))
    >>> for k in range(1, 40):
    ...     holt.update(np.array([10.0 + 2 * k, 50.0]))
    >>> np.round(holt.forecast(np.array([1, 5])), 1).tolist()
    [[90.0, 98.0], [50.0, 50.0]]
    """

    def __init__(self, n: int, *, alpha: float, beta: float, phi: float) -> None:
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self.level = np.zeros(n)
        self.trend = np.zeros(n)
        #: Updates since each series was last reset.
        self.steps = np.zeros(n, dtype=np.int64)

    def reset(self, which: BoolArray, values: FloatArray) -> None:
        """Start the chosen series afresh at ``values``, with no trend."""
        self.level[which] = values[which]
        self.trend[which] = 0.0
        self.steps[which] = 0

    def update(self, values: FloatArray) -> None:
        """Take in one new sample of every series."""
        a, b, phi = self.alpha, self.beta, self.phi
        previous = self.level
        self.level = a * values + (1 - a) * (previous + phi * self.trend)
        self.trend = b * (self.level - previous) + (1 - b) * phi * self.trend
        self.steps += 1

    def forecast(self, steps: npt.NDArray[np.int64]) -> FloatArray:
        """Forecasts ``steps`` ahead, one row per series, one column per horizon."""
        h = steps.astype(np.float64)
        phi = self.phi
        damped = h if phi == 1.0 else phi * (1 - phi**h) / (1 - phi)
        return self.level[:, None] + self.trend[:, None] * damped[None, :]


#: ``on_step(ts, totals, forecasts)``: a sample was taken; forecasts are (zones, horizons).
StepListener = Callable[[float, FloatArray, FloatArray], None]


class SurgeForecastDetector(Detector):
    """Alerts "surge expected" when a zone's forecast reaches capacity before its count does."""

    name = "surge_forecast"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        settings: SurgeSettings | None = None,
        on_step: StepListener | None = None,
    ) -> None:
        self.settings = s = settings or SurgeSettings()
        self.headcount = ZoneHeadcount(catalog, device)
        n = len(self.headcount.gauges)
        self.holt = HoltForecaster(n, alpha=s.alpha, beta=s.beta, phi=s.phi)
        self.horizon_steps = np.array(
            [max(1, round(h / s.step_s)) for h in s.horizons_s], dtype=np.int64
        )
        self._alert_steps = max(1, round(s.alert_horizon_s / s.step_s))
        self._on_step = on_step
        self._next_at: float | None = None
        self._armed = np.ones(n, dtype=np.bool_)
        self._streak = np.zeros(n, dtype=np.int64)

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Take in counts; at each step boundary they pass, update the forecasts and check them."""
        if batch.stream not in self.headcount.fields or len(batch) == 0:
            return []
        timeline = self.headcount.update(batch)
        if not len(timeline):
            return []
        step = self.settings.step_s
        first, latest = float(timeline.ts[0]), float(timeline.ts[-1])
        if self._next_at is None or first - self._next_at > self.settings.max_gap_s:
            self.holt.reset(np.ones(len(self.headcount.gauges), dtype=np.bool_), timeline.before)
            self._next_at = (first // step + 1) * step
        alerts: list[Alert] = []
        if latest >= self._next_at:
            count = int((latest - self._next_at) // step) + 1
            at = (self._next_at + step * np.arange(count)).astype(np.float64)
            samples = timeline.totals_at(at)
            for when, totals in zip(at.tolist(), samples, strict=True):
                self.holt.update(totals)
                if self._on_step is not None:
                    forecasts = self.holt.forecast(self.horizon_steps)
                    self._on_step(when, totals.copy(), forecasts)
                alerts += self._check(totals, timeline, when, now)
            self._next_at = float(at[-1]) + step
        # A counter joining a zone makes its sum jump: that is no surge, so start afresh.
        self.holt.reset(timeline.joined, timeline.totals[-1])
        return alerts

    def _check(self, totals: FloatArray, timeline: Timeline, ts: float, now: float) -> list[Alert]:
        s = self.settings
        ahead = self.holt.forecast(np.array([self._alert_steps], dtype=np.int64))[:, 0]
        capacity = self.headcount.capacity
        self._armed |= ahead < s.rearm_fraction * capacity
        ready = (self.holt.steps * s.step_s >= s.min_history_s) & ~timeline.joined
        rising = self.holt.trend > 0
        over = ready & rising & (totals < capacity) & (ahead >= capacity)
        self._streak = np.where(over, self._streak + 1, 0)
        found = np.flatnonzero(self._armed & (self._streak >= s.confirm_steps))
        self._armed[found] = False
        entry = timeline.entry_at(ts)
        return [self._alert(int(g), float(totals[g]), timeline, entry, ts, now) for g in found]

    def _crossing_s(self, gauge: int) -> float:
        """Seconds until ``gauge`` reaches capacity if it keeps gaining at its current rate.

        The damped forecast decides whether to warn; this undamped figure says how soon, in the
        words an operator uses ("at this rate, full in 3 minutes").
        """
        trend = float(self.holt.trend[gauge])
        room = float(self.headcount.capacity[gauge] - self.holt.level[gauge])
        if trend <= 0:
            return np.inf
        return max(0.0, room / trend) * self.settings.step_s

    def _alert(
        self, gauge: int, people: float, timeline: Timeline, entry: int, ts: float, now: float
    ) -> Alert:
        s = self.settings
        g = self.headcount.gauges[gauge]
        driver, rise = self.headcount.driver(gauge)
        counts = self.headcount.counts(gauge, timeline, entry)
        forecasts = self.holt.forecast(self.horizon_steps)[gauge]
        ahead = {f"{h:g}": number(v) for h, v in zip(s.horizons_s, forecasts, strict=True)}
        lead = self._crossing_s(gauge)
        per_minute = float(self.holt.trend[gauge]) * 60.0 / s.step_s
        expected = float(self.holt.forecast(np.array([self._alert_steps]))[gauge, 0])
        return alert(
            detector=self.name,
            kind="crowd_surge_expected",
            severity=Severity.HIGH,
            title=(
                f"Surge expected at {g.area.zone.title}: {people:.0f} people now, capacity "
                f"{g.capacity} reached in about {lead / 60:.0f} min"
            ),
            explanation=explain(
                seen=(
                    f"{g.area.zone.title} holds {figure(people, 0)} people"
                    f"{density_text(people, g.area)} and is gaining about "
                    f"{figure(per_minute, 0)} a minute; {driver} rose most, "
                    f"{figure(rise, 0)} above its usual count"
                ),
                against=(
                    f"so its forecast for {figure(s.alert_horizon_s / 60, 0)} min ahead, "
                    f"{figure(expected, 0)}, exceeds the capacity of {g.capacity}; at the current "
                    f"rate it is full in about {figure(lead / 60, 1)} min"
                ),
                sure=(
                    "A forecast (Holt's damped trend), not a measurement: the crowd may stop "
                    "growing; the count is still under capacity"
                ),
                detector=self.name,
                score=expected / g.capacity,
            ),
            stream=next(iter(self.headcount.fields)),
            device_id=driver,
            place=g.place,
            ts=ts,
            now=now,
            evidence={
                "zone": g.area.zone.name,
                "people": people,
                "capacity": g.capacity,
                "forecast": ahead,
                "expected_crossing_in_s": number(lead),
                "trend_per_min": number(per_minute),
                "driver": driver,
                "driver_rise": number(rise),
                "model": {
                    "method": "holt_damped",
                    "alpha": s.alpha,
                    "beta": s.beta,
                    "phi": s.phi,
                    "step_s": s.step_s,
                },
                "score": number(expected / g.capacity),
                "counters": counts,
                "readings": [
                    {"device_id": d, "ts": ts, "values": {"people": v}} for d, v in counts.items()
                ],
            },
        )

"""Attack detection on a water network's hourly SCADA readings, live or in batch.

Each hour gets evidence from the physics (mass balance per tank, status against flow, pump
state against the tank level thresholds) and from the cross-check regressions. Residuals are
smoothed (an exponential average, because a concealed attack leaves a small but lasting bias),
divided by thresholds calibrated on normal operation, and an hour is suspicious when any
variable goes over 1. An attack is declared when ``k`` of the last ``n`` hours are suspicious,
and once declared it lasts at least ``min_hours``. Live and batch run the same step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from civicguard.detect.water.network import WaterNetwork
from civicguard.detect.water.physics import PhysicsModel, hour_of_day
from civicguard.detect.water.residuals import CrossCheckModel
from civicguard.detect.water.scada import ScadaTable

#: Score given to an hour where a pump's status contradicts its flow: no normal hour does that.
BREACH_SCORE = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchSettings:
    """The detector's knobs; thresholds themselves are learned by calibration."""

    #: Weight of the newest hour in the smoothed residuals (1 = no smoothing).
    alpha: float = 0.3
    #: Hysteresis slack (m) before a pump's state counts as breaking its level thresholds.
    control_margin: float = 0.1
    #: Quantile of the smoothed normal residuals that sets each variable's threshold.
    quantile: float = 99.9
    #: Multiplier on those thresholds (the one knob tuned when calibrating on attacks).
    gain: float = 1.2
    k: int = 2
    n: int = 3
    min_hours: int = 12
    #: How many variables an alert names.
    implicated: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class HourVerdict:
    """The detector's call on one hour."""

    ts: float
    under_attack: bool
    score: float
    #: The tags with the largest normalised evidence, most implicated first.
    implicated: tuple[str, ...]


@dataclass(slots=True)
class _Trail:
    """What the persistence logic carries from hour to hour."""

    smooth: np.ndarray
    votes: deque[bool]
    open_for: int = 0
    prev: np.ndarray | None = None


class WaterAttackModel:
    """The learned part: physics laws, cross-checks and per-variable thresholds."""

    def __init__(
        self, network: WaterNetwork, columns: tuple[str, ...], settings: WatchSettings
    ) -> None:
        self.network = network
        self.columns = columns
        self.settings = settings
        self.physics = PhysicsModel(network, columns)
        self.cross = CrossCheckModel(columns)
        self.thresholds = np.ones(0)

    @property
    def names(self) -> list[str]:
        """The tag each evidence column speaks for."""
        return (
            self.cross.names()
            + self.physics.balance_names()
            + self.physics.pair_names()
            + self.physics.control_names()
        )

    @property
    def _smoothed(self) -> int:
        return len(self.cross.targets) + len(self.physics.balances)

    def fit(self, normal: ScadaTable) -> None:
        """Learn laws and cross-checks from normal operation, and thresholds from the same."""
        values = normal.values
        self.physics.fit(values[:-1], values[1:], hour_of_day(normal.ts[1:]))
        self.cross.fit(values, normal.ts)
        self.calibrate(normal)

    def calibrate(self, normal: ScadaTable) -> None:
        """Set each smoothed residual's threshold from rows known to be normal."""
        raw = self.evidence(normal.values, normal.ts, None)
        smooth = _ewma(raw[:, : self._smoothed], self.settings.alpha)
        self.thresholds = np.percentile(np.abs(smooth), self.settings.quantile, axis=0) + 1e-9

    def with_settings(self, settings: WatchSettings) -> WaterAttackModel:
        """The same learned model under other persistence settings (thresholds kept)."""
        clone = WaterAttackModel.__new__(WaterAttackModel)
        clone.network, clone.columns = self.network, self.columns
        clone.physics, clone.cross = self.physics, self.cross
        clone.thresholds = self.thresholds
        clone.settings = settings
        return clone

    def evidence(self, values: np.ndarray, ts: np.ndarray, before: np.ndarray | None) -> np.ndarray:
        """(n, evidence) unsmoothed evidence of consecutive rows; ``before`` precedes row 0."""
        if before is None:
            prev = np.vstack([values[:1], values[:-1]])  # no balance to check on the first hour
        else:
            prev = np.vstack([before[None, :], values[:-1]])
        cross = self.cross.residuals(values, ts)
        balance = self.physics.balance_residuals(prev, values, hour_of_day(ts))
        if before is None:
            balance[0] = 0.0
        pairs = self.physics.status_flow_breaches(values).astype(float) * BREACH_SCORE
        controls = self.physics.control_breaches(values, self.settings.control_margin)
        return np.hstack([cross, balance, pairs, controls * BREACH_SCORE + (controls > 0)])

    def new_trail(self) -> _Trail:
        """Fresh carried state for a stream that starts now."""
        return _Trail(smooth=np.zeros(self._smoothed), votes=deque(maxlen=self.settings.n))

    def step(self, trail: _Trail, ts: float, evidence: np.ndarray) -> HourVerdict:
        """Advance the carried state by one hour of evidence and judge that hour."""
        s = self.settings
        m = self._smoothed
        trail.smooth = (1 - s.alpha) * trail.smooth + s.alpha * evidence[:m]
        scores = np.concatenate([np.abs(trail.smooth) / (self.thresholds * s.gain), evidence[m:]])
        worst = float(scores.max())
        trail.votes.append(worst > 1.0)
        # open_for counts the hours of the current event; it stays open while the vote holds
        # and, once open, for at least min_hours.
        if sum(trail.votes) >= s.k or 0 < trail.open_for < s.min_hours:
            trail.open_for += 1
        else:
            trail.open_for = 0
        under_attack = trail.open_for > 0
        names = self.names
        top = np.argsort(-scores)[: s.implicated]
        implicated = tuple(names[i] for i in top if scores[i] > 0)
        return HourVerdict(ts=ts, under_attack=under_attack, score=worst, implicated=implicated)


def _ewma(x: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(x)
    state = np.zeros(x.shape[1])
    for t in range(len(x)):
        state = (1 - alpha) * state + alpha * x[t]
        out[t] = state
    return out


def detect_batch(model: WaterAttackModel, table: ScadaTable) -> list[HourVerdict]:
    """Judge every hour of a table at once (evidence computed in one vectorised pass)."""
    evidence = model.evidence(table.values, table.ts, None)
    trail = model.new_trail()
    return [model.step(trail, float(t), evidence[i]) for i, t in enumerate(table.ts)]


class LiveWaterWatch:
    """Judges a live stream one hourly reading at a time, carrying state between readings."""

    def __init__(self, model: WaterAttackModel) -> None:
        self.model = model
        self._trail = model.new_trail()

    def push(self, ts: float, reading: dict[str, float]) -> HourVerdict:
        """Judge one hourly reading (all SCADA tags by name)."""
        row = np.array([float(reading[c]) for c in self.model.columns])
        evidence = self.model.evidence(row[None, :], np.array([ts]), self._trail.prev)[0]
        self._trail.prev = row
        return self.model.step(self._trail, ts, evidence)


"""Attack detection on a water network's hourly SCADA readings, live or in batch.

Each hour gets evidence from the physics (mass balance per tank, each pump's flow against its
learned curve of flow over station head, status against flow, pump state against the tank
level thresholds), from the cross-check regressions, and from two checks that need the
stream's history: verbatim replays of earlier readings (``replay``) and pumps that contradict
their PLC's hysteresis memory (``plc``). Residuals are smoothed (an exponential average,
because a concealed attack leaves a small but lasting bias; each hour's input capped so that a
gross breach fades within hours of its end) and divided by thresholds calibrated on normal
operation; an unsmoothed residual far beyond its normal hourly extreme counts at once. An hour
is suspicious when any variable goes over 1. An attack is declared when ``k`` of the last
``n`` hours are suspicious, and once declared it lasts at least ``min_hours``. Live and batch
run the same step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from civicguard.detect.water.network import WaterNetwork
from civicguard.detect.water.physics import PhysicsModel, hour_of_day
from civicguard.detect.water.plc import ControlBand, ControlTracker, band_breaches, learn_bands
from civicguard.detect.water.replay import ReplayLimits, ReplayTracker, replay_runs
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
    #: Largest residual, in multiples of its normal hourly extreme, let into the smoothing:
    #: a gross breach then fades from memory within hours of the attack's end.
    cap: float = 4.0
    #: Multiplier on the hourly extremes above which one unsmoothed hour is suspicious.
    raw_gain: float = 2.0
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
    replay: ReplayTracker
    plc: ControlTracker
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
        self.replay = ReplayLimits(tags=(), longest=np.zeros(0))
        self.bands: tuple[ControlBand, ...] = ()
        self.thresholds = np.ones(0)
        self.hourly_limits = np.ones(0)

    @property
    def names(self) -> list[str]:
        """The tag each evidence column speaks for."""
        return (
            self.cross.names()
            + self.physics.balance_names()
            + self.physics.curve_names()
            + self.physics.pair_names()
            + self.physics.control_names()
            + [self.columns[j] for j in self.replay.tags]
            + [f"S_{b.link}" for b in self.bands]
        )

    @property
    def _smoothed(self) -> int:
        return len(self.cross.targets) + len(self.physics.balances) + len(self.physics.curves)

    def fit(self, normal: ScadaTable) -> None:
        """Learn laws and cross-checks from normal operation, and thresholds from the same."""
        values = normal.values
        self.physics.fit(values[:-1], values[1:], hour_of_day(normal.ts[1:]))
        self.cross.fit(values, normal.ts)
        self.replay = ReplayLimits.learn(values, self.columns)
        self.bands = learn_bands(self.network, self.columns, values)
        self.calibrate(normal)

    def calibrate(self, normal: ScadaTable) -> None:
        """Set each smoothed residual's threshold from rows known to be normal."""
        raw = self.evidence(normal.values, normal.ts, None)[:, : self._smoothed]
        q = self.settings.quantile
        self.hourly_limits = np.percentile(np.abs(raw), q, axis=0) + 1e-9
        smooth = _ewma(self._clip(raw), self.settings.alpha)
        self.thresholds = np.percentile(np.abs(smooth), q, axis=0) + 1e-9

    def _clip(self, raw: np.ndarray) -> np.ndarray:
        bound = self.hourly_limits * self.settings.cap
        clipped: np.ndarray = np.clip(raw, -bound, bound)
        return clipped

    def scores(self, smooth: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        """Evidence in units of its threshold (over 1 is suspicious), smoothed or not."""
        s = self.settings
        m = self._smoothed
        slow = np.abs(smooth) / (self.thresholds * s.gain)
        fast = np.abs(evidence[..., :m]) / (self.hourly_limits * s.gain * s.raw_gain)
        out: np.ndarray = np.concatenate([np.maximum(slow, fast), evidence[..., m:]], axis=-1)
        return out

    def with_settings(self, settings: WatchSettings) -> WaterAttackModel:
        """The same learned model under other persistence settings (thresholds kept)."""
        clone = WaterAttackModel.__new__(WaterAttackModel)
        clone.network, clone.columns = self.network, self.columns
        clone.physics, clone.cross, clone.replay = self.physics, self.cross, self.replay
        clone.bands = self.bands
        clone.thresholds, clone.hourly_limits = self.thresholds, self.hourly_limits
        clone.settings = settings
        return clone

    def evidence(self, values: np.ndarray, ts: np.ndarray, before: np.ndarray | None) -> np.ndarray:
        """(n, evidence) unsmoothed evidence of consecutive rows; ``before`` precedes row 0.

        Everything but the replay scores, which need the stream's whole history.
        """
        if before is None:
            prev = np.vstack([values[:1], values[:-1]])  # no balance to check on the first hour
        else:
            prev = np.vstack([before[None, :], values[:-1]])
        cross = self.cross.residuals(values, ts)
        balance = self.physics.balance_residuals(prev, values, hour_of_day(ts))
        if before is None:
            balance[0] = 0.0
        curves = self.physics.curve_residuals(values)
        pairs = self.physics.status_flow_breaches(values).astype(float) * BREACH_SCORE
        controls = self.physics.control_breaches(values, self.settings.control_margin)
        return np.hstack([cross, balance, curves, pairs, controls * BREACH_SCORE + (controls > 0)])

    def new_trail(self) -> _Trail:
        """Fresh carried state for a stream that starts now."""
        return _Trail(
            smooth=np.zeros(self._smoothed),
            votes=deque(maxlen=self.settings.n),
            replay=ReplayTracker(self.replay.tags),
            plc=ControlTracker(self.bands, self.settings.control_margin),
        )

    def stateful_evidence(self, trail: _Trail, row: np.ndarray) -> np.ndarray:
        """Evidence that needs the stream's history: replays and the PLCs' memory."""
        replay = self.replay.scores(trail.replay.push(row))
        return np.concatenate([replay, trail.plc.push(row) * BREACH_SCORE])

    def step(self, trail: _Trail, ts: float, evidence: np.ndarray) -> HourVerdict:
        """Advance the carried state by one hour of evidence and judge that hour."""
        s = self.settings
        m = self._smoothed
        trail.smooth = (1 - s.alpha) * trail.smooth + s.alpha * self._clip(evidence[:m])
        scores = self.scores(trail.smooth, evidence)
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


def full_evidence(model: WaterAttackModel, table: ScadaTable) -> np.ndarray:
    """(n, evidence) every hour's evidence, replay scores included, as a stream would see it."""
    static = model.evidence(table.values, table.ts, None)
    replay = model.replay.scores(replay_runs(table.values, model.replay.tags))
    margin = model.settings.control_margin
    plc = band_breaches(table.values, model.bands, margin) * BREACH_SCORE
    return np.hstack([static, replay, plc])


def detect_batch(
    model: WaterAttackModel, table: ScadaTable, evidence: np.ndarray | None = None
) -> list[HourVerdict]:
    """Judge every hour of a table at once (``evidence`` from ``full_evidence`` if given)."""
    if evidence is None:
        evidence = full_evidence(model, table)
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
        static = self.model.evidence(row[None, :], np.array([ts]), self._trail.prev)[0]
        evidence = np.concatenate([static, self.model.stateful_evidence(self._trail, row)])
        self._trail.prev = row
        return self.model.step(self._trail, ts, evidence)


def hourly_flags(model: WaterAttackModel, evidence: np.ndarray) -> np.ndarray:
    """The flags ``detect_batch`` would raise on ``evidence``, without naming devices.

    The same smoothing, vote and persistence as ``WaterAttackModel.step``, done for a whole
    table at once; benchmarks call it many times while searching settings.
    """
    s = model.settings
    smooth = _ewma(model._clip(evidence[:, : model._smoothed]), s.alpha)
    scores = model.scores(smooth, evidence)
    suspicious = scores.max(axis=1) > 1.0
    flags = np.zeros(len(evidence), dtype=bool)
    votes: deque[bool] = deque(maxlen=s.n)
    open_for = 0
    for t, vote in enumerate(suspicious.tolist()):
        votes.append(vote)
        if sum(votes) >= s.k or 0 < open_for < s.min_hours:
            open_for += 1
        else:
            open_for = 0
        flags[t] = open_for > 0
    return flags

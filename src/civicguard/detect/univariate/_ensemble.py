"""The ensemble: each member's surprise against its own record, quiet after an alarm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector
from civicguard.detect.univariate._context import ContextNovelty
from civicguard.detect.univariate._cusum import ChangePoint
from civicguard.detect.univariate._entropy import RelativeEntropy
from civicguard.detect.univariate._likelihood import Likelihood, RunningLikelihood
from civicguard.detect.univariate._seasonal import SeasonalProfile
from civicguard.detect.univariate._smoothed import Smoothed
from civicguard.detect.univariate._zscore import RobustZScore


@dataclass(frozen=True, slots=True, kw_only=True)
class EnsembleSettings:
    """One configuration for every stream: warm-up, calibration, alarm and quiet period."""

    #: Points of a stream scored 0 while the members are still learning it.
    warmup: int = 150
    #: Points after which a member's record (its largest surprise so far) is trusted.
    record_warmup: int = 50
    #: Surprises under this many sigmas count half: a record of a calm stream is no news.
    meaningful: float = 3.0
    #: A calibrated surprise at least this high (a new record) is an alarm...
    alarm: float = 1.0
    #: ...after which the stream's scores are scaled by ``quiet_factor`` for this many points.
    quiet_points: int = 75
    quiet_factor: float = 0.0
    #: The member whose anomaly likelihood (its surprise in sigmas of its own long history)
    #: sharpens the combined score; by default the last one, the contextual detector.
    likelihood_member: int = -1
    #: Raw surprises of that member kept per stream for its likelihood...
    likelihood_window: int = 8640
    #: ...which multiplies the combined score by (1 + gain * z) when z sigmas above habit.
    likelihood_gain: float = 0.05
    #: The member with the largest calibrated surprise is also measured against its own
    #: history on the stream (a running likelihood with this horizon, in points)...
    record_likelihood_window: int = 8640
    #: ...and when it is more than ``record_likelihood_from`` sigmas above its habit, the
    #: combined score is multiplied by (1 + gain * (z - from)): a record set by a member that
    #: is far out of its own habit outranks a record set by a member that often comes close.
    record_likelihood_from: float = 5.0
    record_likelihood_gain: float = 0.02
    #: A leading surprise within this share of its member's record ties it: that is no new
    #: record, and the likelihoods above may not lift it to an alarm. A stream whose events
    #: repeat exactly (a flat line with identical spikes, a pump's regular cycle) ties its
    #: record at every event and would otherwise alarm at each one.
    tie_tolerance: float = 3e-4
    #: A point beyond every value its stream has shown, by more than this share of the
    #: stream's whole range so far, is an alarm by itself, whatever the members' records:
    #: the highest (or lowest) reading ever, by a clear margin. ``None`` turns this off.
    extreme_margin: float | None = 0.05
    #: Such an alarm scores as a combined surprise of this (0.9) times one plus the number of
    #: ranges it lies beyond, so that a far extreme outranks a near one...
    extreme_level: float = 9.0
    #: ...and the next one on the stream waits this many points. Its quiet and the members'
    #: are apart: a record just before a new extreme must not hide it, nor the reverse.
    extreme_quiet: int = 75


#: Points over which the smoothed members average their surprise...
SMOOTHING_POINTS = 10
#: ...except the smoothed robust z-score, which looks for slower drifts.
DRIFT_POINTS = 30
#: Learning rate of the point-by-point seasonal member: slow, so a bin's normal is a habit.
SEASONAL_ALPHA = 0.03
#: ...and its surprises beyond this many sigmas grow only logarithmically, so that the
#: jumps of a nearly flat stream (all near 1000 sigmas) do not tie each other's record.
SEASONAL_COMPRESS = 200.0
#: The contextual detector's share of broken expectations, averaged over this many points...
CONTEXT_POINTS = 20
#: ...and put on the sigma-like scale of the others (all new = 10 sigmas).
CONTEXT_SCALE = 10.0


def countdown(left: FloatArray, fired: npt.NDArray[np.bool_], points: int) -> FloatArray:
    """A quiet period's points left after one more point: ``points`` where an alarm fired.

    >>> countdown(np.array([0.0, 3.0, 0.0]), np.array([False, False, True]), 75).tolist()
    [0.0, 2.0, 75.0]
    """
    result: FloatArray = np.where(fired, float(points), np.maximum(left - 1.0, 0.0))
    return result


def default_members() -> list[UnivariateDetector]:
    """The member detectors of the default ensemble, each with its default settings.

    Point by point: the seasonal profile, the change point and the relative entropy
    (spikes, shifts, a changed spread); averaged over a few points: the robust z-score and
    the seasonal profile (drifts, bursts) and the contextual detector (one broken
    expectation is common even in a healthy stream). The set was chosen by dropping members
    one at a time while the NAB score of one half of the corpus rose (see ``bench nab``);
    the drift window, the seasonal rate and its compression were chosen the same way.
    """
    pointwise: list[UnivariateDetector] = [
        SeasonalProfile(alpha=SEASONAL_ALPHA, compress_above=SEASONAL_COMPRESS),
        ChangePoint(),
        RelativeEntropy(),
    ]
    smoothed: list[UnivariateDetector] = [
        Smoothed(RobustZScore(), DRIFT_POINTS),
        Smoothed(SeasonalProfile(), SMOOTHING_POINTS),
    ]
    context = Smoothed(ContextNovelty(), CONTEXT_POINTS, scale=CONTEXT_SCALE)
    return [*pointwise, *smoothed, context]


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """The ensemble's verdict on some points, with what each member made of them."""

    #: Anomaly scores in [0, 1), as :meth:`Ensemble.update` returns them (0.5 = a new record).
    scores: FloatArray
    #: Each member's raw surprise (sigma-like units), one column per member.
    surprises: FloatArray
    #: Each member's surprise against its own record on the stream (1 = its largest yet).
    contributions: FloatArray
    #: The stream's usual level and spread just before each point, for explanations.
    expected: FloatArray
    spread: FloatArray
    #: How far each point lies beyond every earlier value of its stream, as a share of the
    #: stream's range before it (0 when within that range).
    beyond: FloatArray


class Ensemble(UnivariateDetector):
    """Max over members of surprise relative to that member's record on this stream.

    Calibrating each member against its own largest past surprise on the same stream puts
    streams and members on one scale (1.0 = as surprising as anything seen here) without
    labels. That maximum is raised while the contextual member is unusually surprised for
    this stream (its anomaly likelihood, as in Numenta's detector), so that a record set
    while the stream breaks its habits outranks one set by ordinary noise, and again while
    the member that leads is far above its own habit (a running likelihood per member).
    After an alarm the stream is quiet for a while, which is what a responder wants (one
    alarm per event, not one per reading) and what NAB rewards: only the first detection
    inside a window earns.

    Beside the members, a point beyond every value its stream has shown, by more than
    ``extreme_margin`` of the stream's range, is an alarm by itself: the members' records
    can be set by an early burst of noise or a drop, and would then hide a later all-time
    high that is modest in sigmas. On NAB (after each file's probation), 69 of 87 such
    alarms fell inside an anomaly window, against 114 of 372 alarms of the members.

    >>> ensemble = Ensemble()
    >>> rng = np.random.default_rng(1)
    >>> values = np.concatenate([rng.normal(0, 1, 400), [25.0]])
    >>> scores = ensemble.update(np.zeros(401, dtype=np.intp), values, np.arange(401.0) * 300)
    >>> bool(scores[-1] > scores[:-1].max())
    True
    """

    name = "civicguard"
    seen: FloatArray
    quiet: FloatArray
    record: FloatArray
    low: FloatArray
    high: FloatArray
    extreme_wait: FloatArray

    def __init__(
        self,
        settings: EnsembleSettings | None = None,
        members: Sequence[UnivariateDetector] | None = None,
    ) -> None:
        self.members = list(members) if members is not None else default_members()
        super().__init__(
            (
                ("seen", (), 0.0),
                ("quiet", (), 0.0),
                ("record", (len(self.members),), 1e-9),
                ("low", (), np.inf),
                ("high", (), -np.inf),
                ("extreme_wait", (), 0.0),
            )
        )
        for member in self.members:
            self.part(member)
        self.settings = settings or EnsembleSettings()
        self.likelihood = self.part(
            Likelihood(window=self.settings.likelihood_window, warmup=self.settings.warmup)
        )
        self.record_likelihood = self.part(
            RunningLikelihood(
                columns=len(self.members),
                window=self.settings.record_likelihood_window,
                warmup=self.settings.warmup,
            )
        )

    def member_surprises(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Every member's raw surprise (sigmas) for these points, one column per member."""
        return np.stack([m.surprise(slots, values, ts) for m in self.members], axis=1)

    def to_score(self, surprise: FloatArray) -> FloatArray:
        """A calibrated surprise r as r / (1 + r): 0.5 for a new record."""
        r = np.maximum(surprise, 0.0)
        result: FloatArray = r / (1.0 + r)
        return result

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``; 1.0 means a new record."""
        return self._step(slots, values, ts)[0]

    def assess(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> Assessment:
        """Like :meth:`update`, with each member's part and the stream's expected level.

        The expected level and spread are those of the first robust z-score member (plain or
        smoothed) before it learned the point (NaN if there is none), so that an alert can
        say what was usual.
        """
        slots = np.asarray(slots, dtype=np.intp)
        values = np.asarray(values, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        n, m = values.shape[0], len(self.members)
        out = Assessment(
            scores=np.zeros(n),
            surprises=np.zeros((n, m)),
            contributions=np.zeros((n, m)),
            expected=np.full(n, np.nan),
            spread=np.full(n, np.nan),
            beyond=np.zeros(n),
        )
        # A smoothed z-score keeps its baseline in the detector it wraps.
        inner = [getattr(member, "inner", member) for member in self.members]
        yardstick = next((m.baseline for m in inner if isinstance(m, RobustZScore)), None)
        for at in self.steps(slots):
            step_slots = slots[at]
            if yardstick is not None:
                out.expected[at] = yardstick.level[step_slots]
                out.spread[at] = yardstick.sigma(step_slots)
            combined, raw, calibrated, beyond = self._step(step_slots, values[at], ts[at])
            out.scores[at] = self.to_score(combined)
            out.surprises[at] = raw
            out.contributions[at] = calibrated
            out.beyond[at] = beyond
        return out

    def _step(
        self, slots: IndexArray, values: FloatArray, ts: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Score and learn one point per slot: combined, raw and calibrated surprises, beyond."""
        settings = self.settings
        raw = self.member_surprises(slots, values, ts)
        record = self.record[slots]
        seen = self.seen[slots]
        calibrated = raw / record
        calibrated = np.where(raw < settings.meaningful, 0.5 * calibrated, calibrated)
        calibrated[seen < settings.record_warmup] = 0.0
        self.record[slots] = np.maximum(record, raw)
        self.seen[slots] = seen + 1.0
        combined = np.where(seen < settings.warmup, 0.0, calibrated.max(axis=1))
        z = self.likelihood.zscore(slots, raw[:, settings.likelihood_member])
        combined = combined * (1.0 + settings.likelihood_gain * np.maximum(z, 0.0))
        habit = self.record_likelihood.zscore(slots, raw)
        rows = np.arange(slots.size)
        lead = np.argmax(calibrated, axis=1)
        unusual = np.maximum(habit[rows, lead] - settings.record_likelihood_from, 0.0)
        combined = combined * (1.0 + settings.record_likelihood_gain * unusual)
        tie = np.abs(raw[rows, lead] / record[rows, lead] - 1.0) < settings.tie_tolerance
        below_alarm = settings.alarm * (1.0 - settings.tie_tolerance)
        combined = np.where(tie, np.minimum(combined, below_alarm), combined)
        quiet = self.quiet[slots]
        combined = np.where(quiet > 0, combined * settings.quiet_factor, combined)
        self.quiet[slots] = countdown(quiet, combined >= settings.alarm, settings.quiet_points)
        beyond = self._beyond(slots, values)
        if settings.extreme_margin is not None:
            wait = self.extreme_wait[slots]
            extreme = (beyond > settings.extreme_margin) & (seen >= settings.warmup) & (wait <= 0)
            level = settings.extreme_level * (1.0 + beyond)
            combined = np.where(extreme, np.maximum(combined, level), combined)
            self.extreme_wait[slots] = countdown(wait, extreme, settings.extreme_quiet)
        return combined, raw, calibrated, beyond

    def _beyond(self, slots: IndexArray, values: FloatArray) -> FloatArray:
        """How far ``values`` lie beyond their streams' earlier range, in ranges; then learn it."""
        low = self.low[slots]
        high = self.high[slots]
        span = high - low
        outside = np.maximum(values - high, low - values)
        self.low[slots] = np.minimum(low, values)
        self.high[slots] = np.maximum(high, values)
        usable = np.isfinite(span) & (span > 0)
        beyond: FloatArray = np.divide(
            np.maximum(outside, 0.0), span, out=np.zeros_like(values), where=usable
        )
        return beyond

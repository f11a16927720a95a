"""A robust running level and spread per stream, the yardstick most detectors measure against."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, SlotState

#: Mean absolute deviation of a normal distribution times this is its standard deviation.
MAD_TO_SIGMA = float(np.sqrt(np.pi / 2))
#: Deviations are clipped at this many sigmas when learning, so one wild point cannot blind us.
CLIP_SIGMAS = 3.0
#: The smallest sigma, as a share of the range seen so far: a flat signal's first wobble is
#: news, but not an infinite one.
FLOOR_SHARE = 0.002
#: ...and never below this share of the level: before its first wobble a flat signal has no
#: range, and a wobble measured against nothing would set a record (billions of sigmas) that
#: nothing later could beat, blinding the ensemble to the stream.
LEVEL_FLOOR_SHARE = 0.001
#: Points averaged plainly (1/n) before the exponential weighting takes over, counted from the
#: stream's first change of value: a stream that sat on one value has no spread to speak of,
#: and learns its level and spread anew, quickly, once it starts to move.
SETTLE_POINTS = 10
#: Until it has settled, its sigma is at least this share of the range seen so far: a coarse
#: yardstick, so that its first moves are not billions of sigmas (a record no later event of
#: the stream could beat).
SETTLING_FLOOR_SHARE = 0.1


class Baseline(SlotState):
    """Exponentially weighted level and mean absolute deviation with winsorised updates."""

    level: FloatArray
    spread: FloatArray
    low: FloatArray
    high: FloatArray
    count: FloatArray
    #: Points learned since the stream's first change of value (0 while it has not changed).
    moving: FloatArray

    def __init__(self, alpha: float) -> None:
        super().__init__(
            (
                ("level", (), np.nan),
                ("spread", (), 0.0),
                ("low", (), np.inf),
                ("high", (), -np.inf),
                ("count", (), 0.0),
                ("moving", (), 0.0),
            )
        )
        self.alpha = alpha

    def sigma(self, slots: IndexArray) -> FloatArray:
        """Each slot's spread in sigma units, never below its floor."""
        span = self.high[slots] - self.low[slots]
        span = np.where(np.isfinite(span), span, 0.0)
        floor = np.maximum(FLOOR_SHARE * span, 1e-9)
        floor = np.maximum(floor, LEVEL_FLOOR_SHARE * np.nan_to_num(np.abs(self.level[slots])))
        floor = np.where(
            self.moving[slots] < SETTLE_POINTS,
            np.maximum(floor, SETTLING_FLOOR_SHARE * span),
            floor,
        )
        result: FloatArray = np.maximum(self.spread[slots] * MAD_TO_SIGMA, floor)
        return result

    def zscore(self, slots: IndexArray, values: FloatArray) -> FloatArray:
        """Signed deviation from the level in sigmas (0 before the first point)."""
        level = self.level[slots]
        z = (values - level) / self.sigma(slots)
        result: FloatArray = np.where(np.isnan(level), 0.0, z)
        return result

    def learn(self, slots: IndexArray, values: FloatArray) -> None:
        """Move level and spread towards ``values``, clipping outliers."""
        old = self.level[slots]
        fresh = np.isnan(old)
        count = self.count[slots]
        low = np.minimum(self.low[slots], values)
        high = np.maximum(self.high[slots], values)
        moving = self.moving[slots] + (high > low)
        # Early on (since the first change of value) the average is plain (1/n), so the first
        # points of a stream that moves set its scale quickly.
        rate = np.maximum(self.alpha, 1.0 / (moving + 1.0))
        deviation = np.where(fresh, 0.0, values - old)
        limit = np.where(moving < SETTLE_POINTS, np.inf, CLIP_SIGMAS * self.sigma(slots))
        clipped = np.clip(deviation, -limit, limit)
        self.level[slots] = np.where(fresh, values, old + rate * clipped)
        self.spread[slots] += np.where(fresh, 0.0, rate * (np.abs(clipped) - self.spread[slots]))
        self.count[slots] = count + 1.0
        self.moving[slots] = moving
        self.low[slots] = low
        self.high[slots] = high

"""Change-point detection: a two-sided CUSUM of standardised values that re-centres on alarm."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector
from civicguard.detect.univariate._baseline import Baseline

WARMUP = 30


class ChangePoint(UnivariateDetector):
    """Page's CUSUM on z-scores against a slow baseline; surprise is the larger sum.

    ``drift`` is the shift (in sigmas) ignored per point; when a sum passes ``alarm`` the
    detector accepts the new regime: the sums restart and the baseline jumps to the recent
    level, so one change scores once.
    """

    name = "change_point"
    upper: FloatArray
    lower: FloatArray
    recent: FloatArray

    def __init__(self, alpha: float = 0.005, drift: float = 0.5, alarm: float = 30.0) -> None:
        super().__init__((("upper", (), 0.0), ("lower", (), 0.0), ("recent", (), np.nan)))
        self.baseline = self.part(Baseline(alpha))
        self.drift = drift
        self.alarm = alarm

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``."""
        ready = self.baseline.count[slots] >= WARMUP
        z = np.clip(self.baseline.zscore(slots, values), -10.0, 10.0)
        upper = np.where(ready, np.maximum(0.0, self.upper[slots] + z - self.drift), 0.0)
        lower = np.where(ready, np.maximum(0.0, self.lower[slots] - z - self.drift), 0.0)
        recent = self.recent[slots]
        recent = np.where(np.isnan(recent), values, recent + 0.1 * (values - recent))
        self.recent[slots] = recent
        total = np.maximum(upper, lower)
        fired = total > self.alarm
        self.upper[slots] = np.where(fired, 0.0, upper)
        self.lower[slots] = np.where(fired, 0.0, lower)
        self.baseline.learn(slots, values)
        jumped = slots[fired]
        self.baseline.level[jumped] = recent[fired]
        # The sum grows linearly with a shift; its square root keeps it on a sigma-like scale.
        result: FloatArray = np.sqrt(total)
        return result

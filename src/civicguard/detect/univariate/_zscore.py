"""Robust EWMA z-score: how far a point lies from the stream's own recent level."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector
from civicguard.detect.univariate._baseline import Baseline

#: Points a stream must have before its z-scores count.
WARMUP = 30


class RobustZScore(UnivariateDetector):
    """|value - EWMA level| over the EWMA mean absolute deviation (winsorised learning).

    >>> detector = RobustZScore()
    >>> ts = np.arange(200.0)
    >>> calm = detector.update(np.zeros(200, dtype=np.intp), np.sin(ts), ts)
    >>> bool(detector.update(np.array([0]), np.array([50.0]), np.array([200.0]))[0] > 0.9)
    True
    """

    name = "robust_zscore"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__(())
        self.baseline = self.part(Baseline(alpha))

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``."""
        z = np.abs(self.baseline.zscore(slots, values))
        ready = self.baseline.count[slots] >= WARMUP
        self.baseline.learn(slots, values)
        result: FloatArray = np.where(ready, z, 0.0)
        return result

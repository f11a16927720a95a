"""A member's surprise averaged over its last few points: slow, persistent oddity counts too."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector


class Smoothed(UnivariateDetector):
    """Mean of ``inner``'s surprises over the last ``points`` points, times ``scale``.

    One odd reading among normal ones barely moves the mean, but a run of moderately odd
    readings (a slow drift, a burst of noise, a broken rhythm) does, which a single-point
    surprise misses. This is the short-term average of Numenta's anomaly likelihood.
    ``scale`` puts a surprise that is not in sigmas (a share, say) on a sigma-like scale.

    >>> from civicguard.detect.univariate import RobustZScore
    >>> detector = Smoothed(RobustZScore(), points=5)
    >>> ts = np.arange(100.0)
    >>> values = np.r_[np.sin(ts[:95]), np.full(5, 8.0)]
    >>> scores = detector.update(np.zeros(100, dtype=np.intp), values, ts)
    >>> bool(scores[-1] > scores[:95].max())
    True
    """

    recent: FloatArray
    count: FloatArray

    def __init__(self, inner: UnivariateDetector, points: int = 10, scale: float = 1.0) -> None:
        super().__init__((("recent", (points,), 0.0), ("count", (), 0.0)))
        self.inner = self.part(inner)
        self.points = points
        self.scale = scale
        self.name = f"smoothed_{inner.name}"

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``."""
        raw = self.inner.surprise(slots, values, ts)
        count = self.count[slots]
        column = (count % self.points).astype(np.intp)
        self.recent[slots, column] = raw
        self.count[slots] = count + 1.0
        result: FloatArray = (
            self.scale * self.recent[slots].sum(axis=1) / np.minimum(count + 1.0, self.points)
        )
        return result

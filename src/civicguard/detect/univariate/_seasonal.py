"""A seasonal baseline: each hour of the day (weekdays apart from weekends) has its own normal."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector
from civicguard.detect.univariate._baseline import MAD_TO_SIGMA, Baseline

DAY_S = 86_400.0
#: Visits of a profile bin before its own normal is trusted.
BIN_WARMUP = 10.0


class SeasonalProfile(UnivariateDetector):
    """Distance of a point from the level learned for its time of day, online.

    The day is cut into ``bins_per_day`` bins, kept apart for weekdays and weekends; each
    bin has its own EWMA level and mean absolute deviation. A bin's spread is floored at a
    share of the stream's overall spread, so that a quiet hour does not over-react.
    Surprises beyond ``compress_above`` sigmas grow only logarithmically (c * (1 + ln(z / c))):
    on a nearly flat stream the floored spread makes every jump a huge, near-equal number, and
    the compressed scale keeps such jumps comparable with the stream's other records.

    >>> profile = SeasonalProfile(compress_above=100.0)
    >>> bool(profile.compress(np.array([50.0, 100.0 * np.e]))[1] == 200.0)
    True
    """

    name = "seasonal"
    level: FloatArray
    spread: FloatArray
    visits: FloatArray

    def __init__(
        self,
        bins_per_day: int = 24,
        alpha: float = 0.1,
        floor_share: float = 0.5,
        compress_above: float = np.inf,
    ) -> None:
        if not compress_above > 0:
            raise ValueError(f"compress_above must be positive, got {compress_above}")
        bins = 2 * bins_per_day
        super().__init__(
            (("level", (bins,), 0.0), ("spread", (bins,), 0.0), ("visits", (bins,), 0.0))
        )
        self.bins_per_day = bins_per_day
        self.alpha = alpha
        self.floor_share = floor_share
        self.compress_above = compress_above
        self.overall = self.part(Baseline(0.01))

    def _bins(self, ts: FloatArray) -> IndexArray:
        day = np.floor(ts / DAY_S)
        # 1970-01-01 was a Thursday: days 2 and 3 after it (mod 7) are Saturday and Sunday.
        weekend = ((day + 3) % 7 >= 5).astype(np.intp)
        within = np.floor((ts - day * DAY_S) / DAY_S * self.bins_per_day).astype(np.intp)
        result: IndexArray = weekend * self.bins_per_day + np.clip(within, 0, self.bins_per_day - 1)
        return result

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``."""
        bins = self._bins(ts)
        level = self.level[slots, bins]
        visits = self.visits[slots, bins]
        floor = self.floor_share * self.overall.sigma(slots)
        sigma = np.maximum(self.spread[slots, bins] * MAD_TO_SIGMA, floor)
        deviation = values - level
        ready = visits >= BIN_WARMUP
        z = np.where(ready, np.abs(deviation) / sigma, 0.0)
        rate = np.maximum(self.alpha, 1.0 / (visits + 1.0))
        clipped = np.where(
            visits < BIN_WARMUP, deviation, np.clip(deviation, -3 * sigma, 3 * sigma)
        )
        self.level[slots, bins] = np.where(visits == 0, values, level + rate * clipped)
        self.spread[slots, bins] += np.where(
            visits == 0, 0.0, rate * (np.abs(clipped) - self.spread[slots, bins])
        )
        self.visits[slots, bins] = visits + 1.0
        self.overall.learn(slots, values)
        return self.compress(z)

    def compress(self, z: FloatArray) -> FloatArray:
        """``z`` unchanged up to ``compress_above``, logarithmic beyond it."""
        cap = self.compress_above
        if not np.isfinite(cap):
            return z
        result: FloatArray = np.where(z > cap, cap * (1.0 + np.log(np.maximum(z, cap) / cap)), z)
        return result

"""Anomaly likelihood: how unusual a raw score is against that stream's own long history.

Written from the published description of Numenta's anomaly likelihood: keep the last
``window`` raw scores of each stream, and measure the current one (or the mean of the last
few) in standard deviations of that history. A noisy raw score that is always high gives
small values; a raw score that rises above its own habit gives large ones.
"""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, SlotState

#: The smallest standard deviation of a history: a constant raw score's first change is
#: news, but not an infinite one.
SIGMA_FLOOR = 1e-3


class Likelihood(SlotState):
    """Z-score of the mean of the last ``short`` raw scores against the last ``window``.

    The history is a ring of ``window`` raw scores per stream with running sums, so each
    point costs O(1) whatever the window. The first ``warmup`` points score 0.

    >>> likelihood = Likelihood(window=100, short=1, warmup=10)
    >>> likelihood.reserve(1)
    >>> slot = np.array([0])
    >>> for x in np.tile([0.0, 1.0], 50):
    ...     z = likelihood.zscore(slot, np.array([x]))
    >>> bool(likelihood.zscore(slot, np.array([5.0]))[0] > 5.0)
    True
    """

    ring: FloatArray
    total: FloatArray
    squares: FloatArray
    recent: FloatArray
    count: FloatArray

    def __init__(self, window: int = 8640, short: int = 1, warmup: int = 150) -> None:
        if window < 1 or short < 1:
            msg = "the likelihood needs a window and a short average of at least one point"
            raise ValueError(msg)
        super().__init__(
            (
                ("ring", (window,), 0.0),
                ("total", (), 0.0),
                ("squares", (), 0.0),
                ("recent", (short,), 0.0),
                ("count", (), 0.0),
            )
        )
        self.window = window
        self.short = short
        self.warmup = warmup

    def zscore(self, slots: IndexArray, raw: FloatArray) -> FloatArray:
        """Learn ``raw`` (one point of each of ``slots``, distinct, reserved); its z-score."""
        count = self.count[slots]
        at = (count % self.window).astype(np.intp)
        old = self.ring[slots, at]
        # A slot of the ring holds 0 until it is first written, so subtracting it is harmless.
        total = self.total[slots] + raw - old
        squares = self.squares[slots] + raw * raw - old * old
        self.ring[slots, at] = raw
        self.total[slots] = total
        self.squares[slots] = squares
        self.recent[slots, (count % self.short).astype(np.intp)] = raw
        self.count[slots] = count + 1.0
        size = np.minimum(count + 1.0, self.window)
        mean = total / size
        sigma = np.maximum(np.sqrt(np.maximum(squares / size - mean * mean, 0.0)), SIGMA_FLOOR)
        short = self.recent[slots].sum(axis=1) / np.minimum(count + 1.0, self.short)
        result: FloatArray = np.where(count < self.warmup, 0.0, (short - mean) / sigma)
        return result


class RunningLikelihood(SlotState):
    """Z-scores of several raw scores per stream against their exponentially weighted history.

    The cheap cousin of :class:`Likelihood` for many scores at once: each of ``columns`` raw
    scores of a stream keeps a running mean and variance, plain averages over the first points
    and then exponentially weighted with weight ``1 / window``, so a stream costs two numbers
    per column whatever the window. A point is learned before it is measured, as in
    :class:`Likelihood`; the first ``warmup`` points score 0.

    >>> likelihood = RunningLikelihood(columns=2, window=100, warmup=10)
    >>> likelihood.reserve(1)
    >>> slot = np.array([0])
    >>> for x in np.tile([0.0, 1.0], 50):
    ...     z = likelihood.zscore(slot, np.array([[x, 1.0 - x]]))
    >>> likelihood.zscore(slot, np.array([[5.0, 0.5]])).round(1).tolist()
    [[6.7, 0.0]]
    """

    mean: FloatArray
    variance: FloatArray
    count: FloatArray

    def __init__(self, columns: int, window: int = 8640, warmup: int = 150) -> None:
        if columns < 1 or window < 1:
            msg = "the running likelihood needs at least one column and a window of one point"
            raise ValueError(msg)
        super().__init__(
            (("mean", (columns,), 0.0), ("variance", (columns,), 0.0), ("count", (), 0.0))
        )
        self.window = window
        self.warmup = warmup

    def zscore(self, slots: IndexArray, raw: FloatArray) -> FloatArray:
        """Learn ``raw`` (one row per slot, distinct, reserved); each column's z-score."""
        count = self.count[slots]
        rate = np.maximum(1.0 / self.window, 1.0 / (count + 1.0))[:, None]
        deviation = raw - self.mean[slots]
        mean = self.mean[slots] + rate * deviation
        variance = (1.0 - rate) * (self.variance[slots] + rate * deviation * deviation)
        self.mean[slots] = mean
        self.variance[slots] = variance
        self.count[slots] = count + 1.0
        sigma = np.maximum(np.sqrt(variance), SIGMA_FLOOR)
        result: FloatArray = np.where((count < self.warmup)[:, None], 0.0, (raw - mean) / sigma)
        return result

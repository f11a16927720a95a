"""Distribution shift: relative entropy between recent and long-run histograms of a stream."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector
from civicguard.detect.univariate._baseline import Baseline

#: Bin edges in sigmas from the baseline level.
EDGES = np.array([-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0])
WARMUP = 100


def chi2_to_sigma(statistic: FloatArray, dof: float) -> FloatArray:
    """A chi-square statistic as a normal deviate (Wilson-Hilferty), no scipy needed.

    >>> round(float(chi2_to_sigma(np.array([8.0]), 8.0)[0]), 2)
    0.17
    """
    k = 2.0 / (9.0 * dof)
    result: FloatArray = (np.cbrt(np.maximum(statistic, 0.0) / dof) - (1.0 - k)) / np.sqrt(k)
    return result


class RelativeEntropy(UnivariateDetector):
    """G-test of the recent histogram (about ``window`` points) against the long-run one.

    Histograms are exponentially weighted one-hot counts over bins of z-score against a
    slow baseline, so nothing but two small arrays per stream is kept. NAB's Relative
    Entropy detector compares fixed windows; this is its streaming cousin.
    """

    name = "relative_entropy"
    recent: FloatArray
    reference: FloatArray

    def __init__(self, window: int = 50, reference_alpha: float = 0.002) -> None:
        bins = EDGES.size + 1
        super().__init__((("recent", (bins,), 1.0 / bins), ("reference", (bins,), 1.0 / bins)))
        self.window = window
        self.reference_alpha = reference_alpha
        self.baseline = self.part(Baseline(0.002))

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``."""
        ready = self.baseline.count[slots] >= WARMUP
        z = self.baseline.zscore(slots, values)
        onehot = np.zeros((slots.size, EDGES.size + 1))
        onehot[np.arange(slots.size), np.searchsorted(EDGES, z)] = 1.0
        recent = self.recent[slots] + (onehot - self.recent[slots]) / self.window
        reference = self.reference[slots]
        floor = 1e-3
        p = np.maximum(recent, floor)
        q = np.maximum(reference, floor)
        divergence = np.sum(p * np.log(p / q), axis=1)
        sigma = chi2_to_sigma(2.0 * self.window * divergence, float(EDGES.size))
        self.recent[slots] = recent
        self.reference[slots] = reference + self.reference_alpha * (onehot - reference)
        self.baseline.learn(slots, values)
        result: FloatArray = np.where(ready, sigma, 0.0)
        return result

"""Predictive error: an online linear predictor on recent lags, scored by its surprise."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector
from civicguard.detect.univariate._baseline import MAD_TO_SIGMA, Baseline

WARMUP = 50


class LinearPredictor(UnivariateDetector):
    """Normalised LMS autoregression on ``lags`` standardised past values.

    The surprise is the prediction error over the EWMA of absolute errors, so a stream that
    is noisy but predictable scores low and a break in its rhythm scores high.
    """

    name = "linear_predictor"
    weights: FloatArray
    history: FloatArray
    error: FloatArray

    def __init__(self, lags: int = 8, step: float = 0.05, alpha: float = 0.02) -> None:
        super().__init__(
            (("weights", (lags,), 0.0), ("history", (lags,), 0.0), ("error", (), np.nan))
        )
        self.lags = lags
        self.step = step
        self.alpha = alpha
        self.baseline = self.part(Baseline(0.005))

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``."""
        ready = self.baseline.count[slots] >= WARMUP
        u = np.clip(self.baseline.zscore(slots, values), -10.0, 10.0)
        history = self.history[slots]
        weights = self.weights[slots]
        error = u - np.einsum("ij,ij->i", weights, history)
        typical = self.error[slots]
        scale = np.where(np.isnan(typical), 1.0, np.maximum(typical * MAD_TO_SIGMA, 0.05))
        z = np.abs(error) / scale
        # Learn from a clipped error so that one outlier does not wreck the weights.
        clipped = np.clip(error, -3.0 * scale, 3.0 * scale)
        power = np.einsum("ij,ij->i", history, history) + 1e-3
        self.weights[slots] = weights + (self.step * clipped / power)[:, None] * history
        self.error[slots] = np.where(
            np.isnan(typical), np.abs(clipped), typical + self.alpha * (np.abs(clipped) - typical)
        )
        self.history[slots] = np.concatenate([u[:, None], history[:, :-1]], axis=1)
        self.baseline.learn(slots, values)
        result: FloatArray = np.where(ready, z, 0.0)
        return result

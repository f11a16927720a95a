"""The layered detector: the ensemble's score, raised where the resonance is sure."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate import Ensemble, Layered, Resonance, ResonanceSettings

SETTINGS = ResonanceSettings(steps=(1, 2), trend=40)


def streams(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two interleaved streams: a noisy rhythm that breaks at 1500, and plain noise."""
    rng = np.random.default_rng(5)
    t = np.arange(n)
    rhythm = 10.0 + 3.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0.0, 0.05, n)
    rhythm[1500:1530] = 14.0
    noise = rng.normal(0.0, 1.0, n)
    slots = np.tile([0, 1], n)
    values = np.column_stack([rhythm, noise]).ravel()
    ts = 1_700_000_000.0 + np.repeat(t, 2) * 300.0
    return slots.astype(np.intp), values, ts


def test_layered_is_the_higher_of_the_ensemble_and_the_laid_resonance() -> None:
    slots, values, ts = streams(2000)
    layered = Layered(Ensemble(), Resonance(SETTINGS), lift=0.3, scale=0.5).update(
        slots, values, ts
    )
    below = Ensemble().update(slots, values, ts)
    sure = Resonance(SETTINGS).update(slots, values, ts)
    expected = np.maximum(below, np.where(sure > 0.0, 0.3 + 0.5 * sure, 0.0))
    np.testing.assert_allclose(layered, expected, rtol=0, atol=1e-12)
    # The broken rhythm is laid over the ensemble: the layer is not a no-op.
    assert (sure[slots == 0][1500:1540] > 0).any()
    assert (expected > below).any()


def test_layered_in_batches_scores_as_in_one() -> None:
    slots, values, ts = streams(1200)
    whole = Layered(Ensemble(), Resonance(SETTINGS)).update(slots, values, ts)
    detector = Layered(Ensemble(), Resonance(SETTINGS))
    parts = [
        detector.update(slots[i : i + 333], values[i : i + 333], ts[i : i + 333])
        for i in range(0, slots.size, 333)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)

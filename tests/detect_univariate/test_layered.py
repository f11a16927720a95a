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


def laid_by_hand(
    slots: np.ndarray, below: np.ndarray, sure: np.ndarray, lift: float, scale: float
) -> np.ndarray:
    """The layering rule written out point by point: corroborated within 15 points by 0.05."""
    last_record: dict[int, int] = {}
    seen: dict[int, int] = {}
    out = np.empty_like(below)
    for i, (slot, b, s) in enumerate(zip(slots.tolist(), below, sure, strict=True)):
        at = seen.get(slot, 0)
        seen[slot] = at + 1
        if b >= 0.45:
            last_record[slot] = at
        near = slot in last_record and at - last_record[slot] < 15
        out[i] = max(b, lift + scale * s + (0.05 if near else 0.0)) if s > 0 else b
    return out


def test_layered_is_the_higher_of_the_ensemble_and_the_laid_resonance() -> None:
    slots, values, ts = streams(2000)
    layered = Layered(Ensemble(), Resonance(SETTINGS), lift=0.3, scale=0.5).update(
        slots, values, ts
    )
    below = Ensemble().update(slots, values, ts)
    sure = Resonance(SETTINGS).update(slots, values, ts)
    expected = laid_by_hand(slots, below, sure, 0.3, 0.5)
    np.testing.assert_allclose(layered, expected, rtol=0, atol=1e-12)
    # The broken rhythm is laid over the ensemble: the layer is not a no-op.
    assert (sure[slots == 0][1500:1540] > 0).any()
    assert (expected > below).any()
    # ...and some of the resonance's anomalies there follow a member's record.
    plain = np.maximum(below, np.where(sure > 0.0, 0.3 + 0.5 * sure, 0.0))
    assert (expected > plain).any()


def test_an_anomaly_soon_after_a_record_is_corroborated_and_one_later_is_not() -> None:
    layered = Layered(Ensemble(), Resonance(SETTINGS))
    layered.reserve(2)
    both = np.array([0, 1], dtype=np.intp)
    # Stream 0: a member's record at 0, then anomalies of confidence 0.5 at 14 and 15.
    # Stream 1: anomalies at the same points, never a record: corroboration is per stream.
    below = np.zeros((16, 2))
    below[0, 0] = 0.5
    sure = np.zeros((16, 2))
    sure[14:, :] = 0.5
    laid = np.array([layered.lay(both, below[t], sure[t]) for t in range(16)])
    np.testing.assert_allclose(laid[14], [0.4 + 0.2 + 0.05, 0.4 + 0.2])
    np.testing.assert_allclose(laid[15], [0.4 + 0.2, 0.4 + 0.2])
    assert laid[0, 0] == 0.5
    assert (laid[1:14] == 0.0).all()


def test_corroboration_off_lays_the_plain_maximum() -> None:
    slots, values, ts = streams(2000)
    below = Ensemble().update(slots, values, ts)
    sure = Resonance(SETTINGS).update(slots, values, ts)
    plain = Layered(Ensemble(), Resonance(SETTINGS), corroboration=0.0).update(slots, values, ts)
    expected = np.maximum(below, np.where(sure > 0.0, 0.4 + 0.4 * sure, 0.0))
    np.testing.assert_allclose(plain, expected, rtol=0, atol=1e-12)


def test_layered_in_batches_scores_as_in_one() -> None:
    slots, values, ts = streams(1200)
    whole = Layered(Ensemble(), Resonance(SETTINGS)).update(slots, values, ts)
    detector = Layered(Ensemble(), Resonance(SETTINGS))
    parts = [
        detector.update(slots[i : i + 333], values[i : i + 333], ts[i : i + 333])
        for i in range(0, slots.size, 333)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)

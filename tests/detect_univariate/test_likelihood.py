"""The anomaly likelihood: a raw score in sigmas of its own long history, per stream."""

from __future__ import annotations

import numpy as np
import pytest

from civicguard.detect.univariate import (
    Ensemble,
    EnsembleSettings,
    Likelihood,
    RunningLikelihood,
)
from civicguard.detect.univariate._likelihood import SIGMA_FLOOR


def run(likelihood: Likelihood, slots: np.ndarray, raw: np.ndarray) -> np.ndarray:
    likelihood.reserve(int(slots.max()) + 1)
    return np.concatenate(
        [likelihood.zscore(slots[i : i + 1], raw[i : i + 1]) for i in range(raw.size)]
    )


def direct(raw: np.ndarray, window: int, short: int, warmup: int) -> np.ndarray:
    """The same z-scores computed plainly from slices of the history."""
    out = np.zeros(raw.size)
    for t in range(raw.size):
        if t < warmup:
            continue
        history = raw[max(0, t + 1 - window) : t + 1]
        sigma = max(history.std(), SIGMA_FLOOR)
        out[t] = (raw[max(0, t + 1 - short) : t + 1].mean() - history.mean()) / sigma
    return out


@pytest.mark.parametrize(("window", "short"), [(50, 1), (80, 7)])
def test_zscore_matches_a_direct_computation_over_the_window(window: int, short: int) -> None:
    raw = np.random.default_rng(3).gamma(2.0, 1.0, 400)
    got = run(Likelihood(window=window, short=short, warmup=20), np.zeros(400, np.intp), raw)
    np.testing.assert_allclose(got, direct(raw, window, short, 20), atol=1e-9)


def test_interleaved_streams_score_as_each_alone() -> None:
    rng = np.random.default_rng(5)
    raws = [rng.exponential(1.0 + k, 300) for k in range(3)]
    slots = np.tile(np.arange(3), 300)
    mixed = run(Likelihood(window=64, short=3, warmup=10), slots, np.stack(raws, axis=1).ravel())
    for k, raw in enumerate(raws):
        alone = run(Likelihood(window=64, short=3, warmup=10), np.zeros(300, np.intp), raw)
        np.testing.assert_allclose(mixed[slots == k], alone, atol=1e-12)


def test_a_rise_above_habit_scores_high_and_noise_does_not() -> None:
    raw = np.random.default_rng(8).normal(1.0, 0.2, 1000)
    calm = run(Likelihood(window=500, warmup=100), np.zeros(1000, np.intp), raw)
    raw[900:] += 2.0
    risen = run(Likelihood(window=500, warmup=100), np.zeros(1000, np.intp), raw)
    assert calm.max() < 5.0
    assert risen[900] > 8.0
    assert np.array_equal(calm[:900], risen[:900])


def test_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        Likelihood(window=0)


def test_ensemble_likelihood_gain_only_raises_scores() -> None:
    values = np.random.default_rng(2).normal(10.0, 1.0, 1500)
    values[1200:1260] = np.tile([8.0, 12.0], 30)
    ts = np.asarray(1_700_000_000.0 + np.arange(1500) * 300.0, dtype=np.float64)
    slots = np.zeros(1500, dtype=np.intp)
    plain = Ensemble(EnsembleSettings(likelihood_gain=0.0, quiet_points=0)).update(
        slots, values, ts
    )
    sharpened = Ensemble(EnsembleSettings(quiet_points=0)).update(slots, values, ts)
    assert np.all(sharpened >= plain - 1e-12)
    assert np.any(sharpened > plain)


def run_columns(likelihood: RunningLikelihood, slots: np.ndarray, raw: np.ndarray) -> np.ndarray:
    likelihood.reserve(int(slots.max()) + 1)
    return np.concatenate(
        [likelihood.zscore(slots[i : i + 1], raw[i : i + 1]) for i in range(raw.shape[0])]
    )


def test_running_likelihood_is_the_plain_z_score_while_the_window_is_unfilled() -> None:
    # Before ``window`` points the averages are plain, so each column's z-score is that of
    # the point among all points so far (itself included), as numpy computes it.
    raw = np.random.default_rng(4).gamma(2.0, 1.0, (300, 3))
    got = run_columns(RunningLikelihood(3, window=1000, warmup=20), np.zeros(300, np.intp), raw)
    expected = np.zeros_like(raw)
    for t in range(20, 300):
        history = raw[: t + 1]
        expected[t] = (raw[t] - history.mean(axis=0)) / np.maximum(history.std(axis=0), SIGMA_FLOOR)
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_running_likelihood_forgets_at_its_window() -> None:
    # Long after a shift, the spread of the old level is forgotten: a small blip at the new
    # level stands out with a short window and drowns in the old spread with a long one.
    raw = np.r_[np.zeros(500), np.ones(5000)][:, None] + np.random.default_rng(6).normal(
        0.0, 0.1, (5500, 1)
    )
    raw[-1] = 1.6
    short = run_columns(RunningLikelihood(1, window=200, warmup=10), np.zeros(5500, np.intp), raw)
    long = run_columns(RunningLikelihood(1, window=10**6, warmup=10), np.zeros(5500, np.intp), raw)
    assert short[-1, 0] > 4.0
    assert long[-1, 0] < 3.0


def test_running_likelihood_interleaved_streams_score_as_each_alone() -> None:
    rng = np.random.default_rng(7)
    raws = [rng.exponential(1.0 + k, (200, 2)) for k in range(3)]
    slots = np.tile(np.arange(3), 200)
    mixed = run_columns(
        RunningLikelihood(2, window=50, warmup=5), slots, np.stack(raws, axis=1).reshape(-1, 2)
    )
    for k, raw in enumerate(raws):
        alone = run_columns(RunningLikelihood(2, window=50, warmup=5), np.zeros(200, np.intp), raw)
        np.testing.assert_allclose(mixed[slots == k], alone, atol=1e-12)


def test_running_likelihood_refuses_no_columns() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        RunningLikelihood(0)


def test_ensemble_record_likelihood_only_raises_scores() -> None:
    values = np.random.default_rng(9).normal(10.0, 1.0, 1500)
    values[1300] = 30.0
    ts = np.asarray(1_700_000_000.0 + np.arange(1500) * 300.0, dtype=np.float64)
    slots = np.zeros(1500, dtype=np.intp)
    # The spike is also a new extreme, which would score the same in both: leave that out.
    alone = {"quiet_points": 0, "extreme_margin": None}
    plain = Ensemble(EnsembleSettings(record_likelihood_gain=0.0, **alone)).update(
        slots, values, ts
    )
    sharpened = Ensemble(EnsembleSettings(**alone)).update(slots, values, ts)
    assert np.all(sharpened >= plain - 1e-12)
    assert sharpened[1300] > plain[1300]

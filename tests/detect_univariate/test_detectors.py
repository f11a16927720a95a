"""Univariate detectors: causality, vectorisation, and what each one flags."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from civicguard.detect import univariate
from civicguard.detect.univariate import (
    ChangePoint,
    ContextNovelty,
    Ensemble,
    EnsembleSettings,
    Layered,
    LinearPredictor,
    RelativeEntropy,
    Resonance,
    ResonanceSettings,
    RobustZScore,
    SeasonalProfile,
    Smoothed,
    UnivariateDetector,
    WindowNeighbours,
)


def smoothed_zscore() -> UnivariateDetector:
    return Smoothed(RobustZScore(), points=10)


def smoothed_context() -> UnivariateDetector:
    return Smoothed(ContextNovelty(), points=20, scale=10.0)


def young_resonance() -> UnivariateDetector:
    # Short warm-ups (40 blocks), so that examples of a few hundred points are scored.
    return Resonance(ResonanceSettings(steps=(1, 2), trend=40))


def young_layered() -> UnivariateDetector:
    # What `bench nab` runs, with the young resonance above so that it speaks on short examples.
    return Layered(over=young_resonance())


def slow_window_neighbours() -> UnivariateDetector:
    # Slow shapes, and a small memory and warm-up so that short examples reach the ranks.
    return WindowNeighbours(length=6, step=4, memory=100, warmup=20, calibration=200)


FACTORIES: list[Callable[[], UnivariateDetector]] = [
    RobustZScore,
    SeasonalProfile,
    ChangePoint,
    RelativeEntropy,
    LinearPredictor,
    ContextNovelty,
    smoothed_zscore,
    smoothed_context,
    slow_window_neighbours,
    young_resonance,
    Ensemble,
    Layered,
]
IDS = [f.__name__ for f in FACTORIES]
#: Causality also with a resonance young enough to speak within the drawn examples.
CAUSAL = [*FACTORIES, young_layered]
N = 2000
INJECT_AT = 1500
STEP_S = 300.0


def series(seed: int, kind: str) -> np.ndarray:
    """Gaussian noise around 10, with a spike or a level shift injected at ``INJECT_AT``."""
    values = np.random.default_rng(seed).normal(10.0, 1.0, N)
    if kind == "spike":
        values[INJECT_AT] += 15.0
    elif kind == "shift":
        values[INJECT_AT:] += 8.0
    return values


def run_alone(factory: Callable[[], UnivariateDetector], values: np.ndarray) -> np.ndarray:
    detector = factory()
    ts = 1_700_000_000.0 + np.arange(values.size) * STEP_S
    return detector.update(np.zeros(values.size, dtype=np.intp), values, ts)


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_scores_are_in_unit_interval(factory: Callable[[], UnivariateDetector]) -> None:
    scores = run_alone(factory, series(0, "shift"))
    assert scores.shape == (N,)
    assert np.all((scores >= 0.0) & (scores <= 1.0))


@pytest.mark.parametrize("factory", CAUSAL, ids=[f.__name__ for f in CAUSAL])
@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=2, max_size=300
    ),
    cut=st.integers(min_value=1, max_value=299),
)
# One example long enough for every detector to speak, with a spike and a shift after the cut
# (drawn examples are often too short for a detector to leave its warm-up).
@example(values=list(series(4, "noise")[:300] + np.r_[np.zeros(250), 15.0, np.full(49, 8.0)]),
         cut=200)  # fmt: skip
def test_future_points_never_change_past_scores(
    factory: Callable[[], UnivariateDetector], values: list[float], cut: int
) -> None:
    full = np.array(values)
    cut = min(cut, full.size - 1)
    ts = np.arange(full.size) * 3600.0
    slots = np.zeros(full.size, dtype=np.intp)
    past = factory().update(slots[:cut], full[:cut], ts[:cut])
    # The same points in two batches, then with the future appended in one batch.
    split = factory()
    first = split.update(slots[:cut], full[:cut], ts[:cut])
    split.update(slots[cut:], full[cut:], ts[cut:])
    whole = factory().update(slots, full, ts)
    np.testing.assert_array_equal(first, past)
    np.testing.assert_array_equal(whole[:cut], past)


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_interleaved_streams_score_as_each_alone(
    factory: Callable[[], UnivariateDetector],
) -> None:
    streams = [series(1, "spike"), series(2, "shift") * 3.0, series(3, "noise") - 50.0]
    alone = [run_alone(factory, v) for v in streams]
    ts = 1_700_000_000.0 + np.arange(N) * STEP_S
    # Round-robin, in uneven batches, one stream starting later (slots 2, 0, 1 order).
    slots = np.tile(np.array([2, 0, 1], dtype=np.intp), N)
    values = np.stack([streams[2], streams[0], streams[1]], axis=1).ravel()
    stamps = np.repeat(ts, 3)
    detector = factory()
    together = np.empty(slots.size)
    for start, stop in ((0, 7), (7, 1000), (1000, 1001), (1001, slots.size)):
        together[start:stop] = detector.update(
            slots[start:stop], values[start:stop], stamps[start:stop]
        )
    for slot in range(3):
        np.testing.assert_allclose(together[slots == slot], alone[slot], rtol=0, atol=1e-12)


CASES = [
    (RobustZScore, "spike"),
    (RobustZScore, "shift"),
    (SeasonalProfile, "spike"),
    (SeasonalProfile, "shift"),
    (ChangePoint, "shift"),
    (RelativeEntropy, "shift"),
    (LinearPredictor, "spike"),
    (LinearPredictor, "shift"),
    (smoothed_zscore, "shift"),
]


@pytest.mark.parametrize(("factory", "kind"), CASES, ids=[f"{f.__name__}-{k}" for f, k in CASES])
@pytest.mark.parametrize("seed", [0, 1])
def test_member_flags_injection_and_stays_low_on_noise(
    factory: Callable[[], UnivariateDetector], kind: str, seed: int
) -> None:
    noise = run_alone(factory, series(seed, "noise"))[200:]
    injected = run_alone(factory, series(seed, kind))
    assert noise.max() < 0.6
    assert injected[INJECT_AT : INJECT_AT + 50].max() > max(0.5, noise.max())


@pytest.mark.parametrize("seed", [0, 1])
def test_smoothed_context_rates_a_new_regime_above_the_habit(seed: int) -> None:
    # Point by point, noise at a level edge breaks a habit now and then; averaged, only a
    # new regime stands out. (The ensemble uses the context detector averaged only.)
    factory = smoothed_context
    noise = np.random.default_rng(seed).normal(0.0, 0.3, N)
    rhythm = np.tile([0.0, 5.0, 10.0, 5.0, 2.0], N // 5) + noise
    shifted = rhythm.copy()
    shifted[INJECT_AT:] += 12.0
    habit = run_alone(factory, rhythm)[500:]
    scores = run_alone(factory, shifted)
    assert scores[INJECT_AT : INJECT_AT + 20].max() > habit.max()


def test_context_learns_a_rhythm_and_flags_a_broken_one() -> None:
    rhythm = np.tile([0.0, 5.0, 10.0, 5.0, 2.0], N // 5)
    broken = rhythm.copy()
    broken[INJECT_AT] = 2.0  # a value the stream knows, at a moment it never comes
    habit = run_alone(ContextNovelty, rhythm)
    scores = run_alone(ContextNovelty, broken)
    assert habit[100:].max() == 0.0
    assert scores[INJECT_AT] == 1.0
    np.testing.assert_array_equal(scores[:INJECT_AT], habit[:INJECT_AT])


def test_context_refuses_more_levels_than_its_masks_hold() -> None:
    with pytest.raises(ValueError, match="8-bit"):
        ContextNovelty(levels=9)


def test_smoothed_is_the_mean_of_the_inner_surprises() -> None:
    values = series(5, "shift")
    ts = 1_700_000_000.0 + np.arange(N) * STEP_S
    slots = np.zeros(N, dtype=np.intp)
    inner = RobustZScore()
    inner.reserve(1)
    raw = np.array(
        [inner.surprise(slots[i : i + 1], values[i : i + 1], ts[i : i + 1])[0] for i in range(N)]
    )
    smoothed = Smoothed(RobustZScore(), points=4, scale=2.0)
    smoothed.reserve(1)
    got = np.array(
        [smoothed.surprise(slots[i : i + 1], values[i : i + 1], ts[i : i + 1])[0] for i in range(N)]
    )
    expected = 2.0 * np.array([raw[max(0, i - 3) : i + 1].mean() for i in range(N)])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("kind", ["spike", "shift"])
@pytest.mark.parametrize("seed", [0, 1])
def test_ensemble_scores_injection_above_anything_noise_gave(kind: str, seed: int) -> None:
    noise = run_alone(Ensemble, series(seed, "noise"))
    injected = run_alone(Ensemble, series(seed, kind))
    assert injected[INJECT_AT : INJECT_AT + 20].max() > noise.max()


def test_ensemble_is_quiet_after_an_alarm() -> None:
    values = series(4, "spike")
    values[INJECT_AT + 10] += 15.0
    scores = run_alone(Ensemble, values)
    assert scores[INJECT_AT] >= 0.5
    # A second spike inside the quiet period is not raised again.
    assert scores[INJECT_AT + 10] == 0.0


def test_ensemble_raises_a_repeated_event_once_and_a_change_after_it() -> None:
    # A flat line with identical spikes every 100 points: each spike ties the record the
    # first one set. A tie is no new record, whatever the likelihoods make of it.
    # The stream is not silenced: a change of another kind is raised.
    values = np.full(3000, 10.0)
    values[400::100] = 20.0
    values[2550:] += 5.0
    alarms = np.flatnonzero(run_alone(Ensemble, values) >= 0.5)
    assert alarms[alarms < 2550].tolist() == [400]
    assert 2550 <= alarms[alarms >= 2550][0] < 2560


def test_ensemble_still_sees_a_flat_stream_after_its_first_wobble() -> None:
    # Before its first spike the stream has no spread at all; that spike must not set a
    # record so large that a spike three times as high, later, goes unraised.
    values = np.full(3000, 10.0)
    values[400::100] = 20.0
    values[2550] = 40.0
    alarms = np.flatnonzero(run_alone(Ensemble, values) >= 0.5)
    assert alarms.tolist() == [400, 2550]


@pytest.mark.parametrize("seed", range(5))
def test_ensemble_sees_a_surge_on_a_stream_that_started_flat_at_zero(seed: int) -> None:
    # A counter that read 0 for its first 600 points (a square at night), then counts a few
    # people a step: its first counts must not set records that no later surge can beat.
    values = np.zeros(4000)
    values[600:] = np.random.default_rng(seed).poisson(3.0, 3400)
    values[3000:3010] += 40.0
    alarms = np.flatnonzero(run_alone(Ensemble, values) >= 0.5)
    assert ((alarms >= 3000) & (alarms < 3010)).any()


def test_ensemble_raises_an_all_time_high_that_the_members_records_hide() -> None:
    # A drop to -20 sets every member's record far beyond anything a modest rise can reach;
    # a later reading above every earlier one, by a tenth of the range, is still news.
    values = np.random.default_rng(3).normal(10.0, 1.0, 1200)
    values[300] = -20.0
    values[1000] = values[:1000].max() + 0.1 * (values[:1000].max() - values[:1000].min())
    with_extremes = run_alone(Ensemble, values)
    without = run_alone(lambda: Ensemble(EnsembleSettings(extreme_margin=None)), values)
    assert without[1000] < 0.5 <= with_extremes[1000]
    assert with_extremes[1000] == with_extremes[301:].max()


def test_ensemble_measures_how_far_beyond_its_range_a_point_lies() -> None:
    values = np.random.default_rng(4).normal(0.0, 1.0, 500)
    assessed = Ensemble().assess(np.zeros(500, dtype=np.intp), values, np.arange(500.0) * 60)
    high = np.maximum.accumulate(values)[:-1]
    low = np.minimum.accumulate(values)[:-1]
    outside = np.maximum(np.maximum(values[1:] - high, low - values[1:]), 0.0)
    expected = np.where(high > low, outside / np.maximum(high - low, 1e-300), 0.0)
    np.testing.assert_allclose(assessed.beyond[1:], expected, rtol=1e-12)
    assert assessed.beyond[0] == 0.0


def test_public_api_is_complete() -> None:
    exported = {
        name
        for name, value in vars(univariate).items()
        if isinstance(value, type) and value.__module__.startswith(univariate.__name__)
    }
    assert exported <= set(univariate.__all__)

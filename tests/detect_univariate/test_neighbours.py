"""Window neighbours: nearest past windows, their rarity, and what the detector flags."""

from __future__ import annotations

import numpy as np
import pytest

from civicguard.detect.univariate import WindowNeighbours

N = 3000
INJECT_AT = 2400


def run(detector: WindowNeighbours, values: np.ndarray) -> np.ndarray:
    ts = 1_700_000_000.0 + np.arange(values.size) * 300.0
    return detector.update(np.zeros(values.size, dtype=np.intp), values, ts)


def rhythm(seed: int) -> np.ndarray:
    """A daily-like rhythm of 48 points with a little noise."""
    t = np.arange(N)
    noise = np.random.default_rng(seed).normal(0.0, 0.05, N)
    return 10.0 + 3.0 * np.sin(2 * np.pi * t / 48) + noise


def test_distance_is_the_kth_nearest_past_window_by_brute_force() -> None:
    values = np.random.default_rng(3).normal(0.0, 1.0, 400)
    detector = WindowNeighbours(length=5, memory=50, k=3, warmup=0)
    detector.reserve(1)
    slot = np.array([0])
    for i, v in enumerate(values):
        detector.surprise(slot, np.array([v]), np.array([float(i)]))
    # After the last point the memory holds the 50 latest windows that end at least
    # ``gap`` (5) points before the newest one.
    window = values[-5:]
    ends = np.arange(values.size - 1 - 5 - 49, values.size - 5)
    past = np.stack([values[e - 4 : e + 1] for e in ends])
    expected = np.sort(np.linalg.norm(past - window, axis=1))[2]
    got = detector.distance(slot, window[None, :])[0]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


#: The score of a distance that only 1 in 100 of the stream's recent ones reached.
ONE_IN_100 = float(np.tanh(np.sqrt(2 * np.log(100.0)) / 10.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_quiet_on_a_repeating_pattern(seed: int) -> None:
    scores = run(WindowNeighbours(), rhythm(seed))
    # The score is a rank among the stream's own distances, so 1 in 100 happens by chance;
    # a habitual rhythm must not do better than that.
    assert np.mean(scores[500:] >= ONE_IN_100) <= 0.02


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("change", ["shape", "level", "frequency"])
def test_flags_an_injected_pattern_change(seed: int, change: str) -> None:
    calm = rhythm(seed)
    values = calm.copy()
    t = np.arange(N - INJECT_AT)
    if change == "shape":  # the rhythm flattens to its mean: values it knows, a new shape
        values[INJECT_AT:] = 10.0 + np.random.default_rng(seed).normal(0.0, 0.05, t.size)
    elif change == "level":
        values[INJECT_AT:] += 4.0
    else:  # twice as fast, same range
        values[INJECT_AT:] = 10.0 + 3.0 * np.sin(2 * np.pi * t / 24)
    habit = run(WindowNeighbours(), calm)
    scores = run(WindowNeighbours(), values)
    np.testing.assert_array_equal(scores[:INJECT_AT], habit[:INJECT_AT])
    # A new pattern keeps landing far from every remembered window, point after point.
    assert np.mean(scores[INJECT_AT : INJECT_AT + 60] >= ONE_IN_100) >= 0.2
    assert np.mean(habit[INJECT_AT : INJECT_AT + 60] >= ONE_IN_100) <= 0.05


def test_a_batch_of_non_consecutive_slots_scores_as_consecutive_ones() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0.0, 1.0, (4, 600)).cumsum(axis=1)
    ts = np.arange(600.0)
    forward, shuffled = WindowNeighbours(memory=100), WindowNeighbours(memory=100)
    forward.reserve(4)
    shuffled.reserve(4)
    order = np.array([3, 1, 0, 2], dtype=np.intp)
    for i in range(600):
        a = forward.surprise(np.arange(4, dtype=np.intp), values[:, i], ts[[i] * 4])
        b = shuffled.surprise(order, values[order, i], ts[[i] * 4])
        np.testing.assert_array_equal(a[order], b)


def test_refuses_a_memory_smaller_than_k() -> None:
    with pytest.raises(ValueError, match="at least k"):
        WindowNeighbours(memory=2, k=3)

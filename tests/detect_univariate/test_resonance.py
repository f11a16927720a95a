"""Adaptive resonance: new shapes alarm, habits do not, and scores never look ahead."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from civicguard.detect.univariate import Resonance
from civicguard.detect.univariate._fuzzy_art import ArtBank, FuzzyArt
from civicguard.detect.univariate._resonance import ResonanceSettings

SETTINGS = ResonanceSettings(steps=(1, 2), trend=40)
#: A daily-like rhythm: a period of 24 readings, a peak, a trough, a little noise.
PERIOD = 24


def rhythm(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0.0, 0.02, n)
    return 10.0 + 3.0 * np.sin(2 * np.pi * t / PERIOD) + noise


def run(detector: Resonance, values: np.ndarray, slot: int = 0) -> np.ndarray:
    ts = 1_700_000_000.0 + np.arange(values.size) * 300.0
    return detector.update(np.full(values.size, slot, dtype=np.intp), values, ts)


def test_warm_up_scores_zero() -> None:
    scores = run(Resonance(SETTINGS), np.random.default_rng(1).normal(0.0, 1.0, 200))
    assert not scores[: SETTINGS.steps[0] * SETTINGS.trend].any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quiet_on_a_repeating_pattern_once_learned(seed: int) -> None:
    values = rhythm(3000, seed)
    detector = Resonance(SETTINGS)
    learned = run(detector, values[:1500])
    coarsest = detector.rungs[-1]
    categories = coarsest.art.count[0]
    scores = run(detector, values[1500:])
    assert not scores.any()
    assert learned[: SETTINGS.trend].sum() == 0.0
    # The pattern's windows fall into the categories it already has: no new box.
    assert coarsest.art.count[0] == categories
    assert coarsest.step == SETTINGS.steps[-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("change", ["plateau", "spike", "flat"])
def test_a_new_shape_is_an_anomaly(seed: int, change: str) -> None:
    values = rhythm(3000, seed)
    at = 2500
    if change == "plateau":
        values[at : at + 40] = 20.0
    elif change == "spike":
        values[at] += 9.0
    else:
        values[at : at + 3 * PERIOD] = 10.0
    scores = run(Resonance(SETTINGS), values)
    assert not scores[1500:at].any()
    assert scores[at : at + 3 * PERIOD].max() > 0.0


def test_a_batch_scores_as_one_point_at_a_time() -> None:
    streams = [rhythm(600, 0), np.random.default_rng(5).normal(0.0, 1.0, 600), rhythm(600, 3)]
    streams[1][400:420] += 6.0
    slots = np.repeat(np.arange(3), 600)
    values = np.concatenate(streams)
    ts = np.tile(np.arange(600.0) * 60.0, 3)
    # Streams interleaved in time order, as they arrive live.
    order = np.lexsort((slots, ts))
    slots, values, ts = slots[order], values[order], ts[order]
    batch = Resonance(SETTINGS).update(slots, values, ts)
    single = Resonance(SETTINGS)
    one_by_one = np.concatenate(
        [single.update(slots[i : i + 1], values[i : i + 1], ts[i : i + 1]) for i in range(ts.size)]
    )
    np.testing.assert_array_equal(batch, one_by_one)
    assert batch.any()
    for s in range(3):
        alone = run(Resonance(SETTINGS), streams[s])
        np.testing.assert_array_equal(batch[slots == s], alone)


def test_appending_future_points_never_changes_past_scores() -> None:
    rng = np.random.default_rng(4)
    values = np.cumsum(rng.normal(0.0, 1.0, 2000)) + rng.normal(0.0, 2.0, 2000)
    values[1200:1230] += 80.0  # a later excursion beyond the warm-up range widens it
    full = run(Resonance(SETTINGS), values)
    for cut in (150, 700, 1210, 1701):
        prefix = run(Resonance(SETTINGS), values[:cut])
        assert prefix.any()
        np.testing.assert_array_equal(prefix, full[:cut])


def test_widening_the_range_maps_every_box_to_a_box() -> None:
    art = FuzzyArt(dim=4, rho=0.9)
    inputs = np.array([[0.2, 0.4, 0.5, 0.6], [0.3, 0.4, 0.6, 0.7], [0.9, 0.1, 0.1, 0.2]])
    for x in inputs:
        art.train(x)
    before = art.weights[: art.count].copy()
    lower, upper = before[:, 2:4], 1.0 - before[:, 6:8]
    art.rescale(slice(2, 4), 0.5, 0.1)
    after = art.weights[: art.count]
    np.testing.assert_allclose(after[:, 2:4], 0.5 * lower + 0.1)
    np.testing.assert_allclose(1.0 - after[:, 6:8], 0.5 * upper + 0.1)
    np.testing.assert_array_equal(after[:, [0, 1, 4, 5]], before[:, [0, 1, 4, 5]])
    # An input inside a box before the map is inside its image after it.
    mapped = inputs[0].copy()
    mapped[2:4] = 0.5 * mapped[2:4] + 0.1
    match, _, _ = art.train(mapped, learn=False)
    assert match == pytest.approx(1.0)


def test_the_confidence_is_a_score_in_zero_one() -> None:
    values = rhythm(3000, 0)
    values[2000:2100] = np.random.default_rng(2).normal(10.0, 5.0, 100)
    scores = run(Resonance(SETTINGS), values)
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    assert np.count_nonzero(scores[2000:2100]) >= 1


def test_many_interleaved_streams_score_exactly_as_each_alone() -> None:
    # Thirty streams of different lengths and starts, so that their blocks complete on
    # different vector steps: rhythms, random walks whose range widens, flat streams and
    # bursts, each scored in one batch with the others and alone.
    rng = np.random.default_rng(9)
    streams: list[np.ndarray] = []
    for s in range(30):
        n = int(rng.integers(250, 800))
        if s % 5 == 0:
            values = np.full(n, float(s))
        elif s % 5 == 1:
            values = rhythm(n, seed=s)
        else:
            values = np.cumsum(rng.normal(0.0, 1.0, n)) + 3.0 * np.sin(np.arange(n) / 4.0)
        at = int(rng.integers(100, n - 20))
        values[at : at + int(rng.integers(1, 15))] += rng.choice([-1.0, 1.0]) * 25.0
        streams.append(values)
    starts = rng.integers(0, 6, len(streams)) * 50  # some start together
    slots = np.concatenate([np.full(v.size, s, dtype=np.intp) for s, v in enumerate(streams)])
    values = np.concatenate(streams)
    ts = np.concatenate([(starts[s] + np.arange(v.size)) * 60.0 for s, v in enumerate(streams)])
    order = np.lexsort((slots, ts))  # as they arrive live
    slots, values, ts = slots[order], values[order], ts[order]
    alone = [run(Resonance(SETTINGS), v) for v in streams]
    in_one = Resonance(SETTINGS).update(slots, values, ts)
    batched = Resonance(SETTINGS)
    bounds = [0, 1, 37, 500, 4000, 4001, slots.size]
    in_batches = np.concatenate(
        [batched.update(slots[a:b], values[a:b], ts[a:b]) for a, b in itertools.pairwise(bounds)]
    )
    assert sum(np.count_nonzero(a) for a in alone) > 30
    for s, scores in enumerate(alone):
        np.testing.assert_array_equal(in_one[slots == s], scores)
        np.testing.assert_array_equal(in_batches[slots == s], scores)


def _train_bank(calm: int, boxes: int, *, noisy: bool) -> ArtBank:
    """A bank of ``calm`` slots each seeing one input, beside (if ``noisy``) slot 0 seeing
    ``boxes`` random inputs that each make a box."""
    slots = np.arange(calm + 1)
    learn = np.ones(slots.size, dtype=np.bool_)
    calm_inputs = np.random.default_rng(8).uniform(0.0, 1.0, (slots.size, 4))
    rng = np.random.default_rng(9)
    bank = ArtBank(dim=4, rho=0.999)
    bank.reserve(slots.size)
    for _ in range(boxes):
        inputs = calm_inputs.copy()
        if noisy:
            inputs[0] = rng.uniform(0.0, 1.0, 4)
        bank.train(slots, inputs, learn)
    return bank


def _held_bytes(build: Callable[[], object]) -> int:
    """Bytes held by what ``build`` returns: the traced memory freed when it goes."""
    tracemalloc.start()
    try:
        built = build()
        with_it = tracemalloc.get_traced_memory()[0]
        del built
        return with_it - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_a_slot_with_many_categories_costs_only_its_own_room() -> None:
    # The noisy slot's boxes widen no other slot's page: the bank holds every slot's first
    # page and the noisy slot's room (less than twice its boxes), with at most as much again
    # (free pages, room to grow); not the noisy slot's room for each calm slot as well.
    calm, boxes = 200, 300
    quiet = _train_bank(calm, boxes, noisy=False)
    busy = _train_bank(calm, boxes, noisy=True)
    assert busy.count[0] >= 0.95 * boxes
    assert busy.count[1:].max() == 1.0
    box_bytes = (2 * 4 + 2) * 8  # weights (both halves), total and edge
    first_pages = (calm + 1) * 16 * box_bytes  # a first page has room for 16
    assert _held_bytes(lambda: _train_bank(calm, boxes, noisy=False)) < 2 * first_pages
    busy_bytes = _held_bytes(lambda: _train_bank(calm, boxes, noisy=True))
    assert busy_bytes < 2 * (first_pages + 2 * boxes * box_bytes)
    # Moving between pages keeps every box as it was.
    noisy = FuzzyArt(dim=4, bank=busy)
    alone = FuzzyArt(dim=4, bank=_train_bank(0, boxes, noisy=True))
    assert noisy.count == alone.count
    np.testing.assert_array_equal(noisy.weights[: noisy.count], alone.weights[: alone.count])
    for slot in (1, calm):
        calm_box = FuzzyArt(dim=4, bank=quiet, slot=slot).weights[:1]
        np.testing.assert_array_equal(FuzzyArt(dim=4, bank=busy, slot=slot).weights[:1], calm_box)


def test_a_stream_that_climbed_gives_up_its_categories_at_the_finer_steps() -> None:
    detector = Resonance(SETTINGS)
    streams = 20
    values = np.stack([rhythm(1000, seed) for seed in range(streams)])
    ts = np.arange(1000.0) * 60.0
    detector.update(np.tile(np.arange(streams), 1000), values.T.ravel(), np.repeat(ts, streams))
    finest, coarsest = detector.rungs[0].art, detector.rungs[-1].art
    assert (detector.first[:streams] == len(SETTINGS.steps) - 1).all()
    assert finest.count[:streams].max() == 0.0
    assert coarsest.count[:streams].min() > 0.0
    assert finest.nbytes < coarsest.nbytes / 10

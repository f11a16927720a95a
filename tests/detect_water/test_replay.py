"""Replay detection: verbatim repeats of earlier stretches, on made-up series and on BATADAL."""

from __future__ import annotations

import numpy as np

from civicguard.detect.water.detector import WaterAttackModel
from civicguard.detect.water.replay import ReplayLimits, ReplayTracker, replay_runs
from civicguard.detect.water.scada import ScadaTable, parse_time


def _noisy(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(3 + np.cumsum(rng.normal(0, 0.2, n)), 2)


def test_a_replayed_stretch_builds_a_run_and_live_noise_does_not() -> None:
    live = _noisy(200, 1)
    replayed = np.concatenate([live[:120], live[40:80], _noisy(40, 2)])
    runs = replay_runs(replayed[:, None], (0,))[:, 0]
    assert not runs[:120].any()
    # The replay starts at hour 120; the first full window of it ends at hour 123.
    assert runs[123] == 1
    varying = [t for t in range(123, 160) if len(set(replayed[t - 3 : t + 1])) >= 3]
    # The run grows through the replay; flat windows (too few distinct readings) report 0.
    assert list(runs[varying]) == sorted(runs[varying]) and runs[159] >= 30
    assert len(varying) > 30
    assert runs[165:].max() == 0  # fresh readings again
    assert not replay_runs(live[:, None], (0,)).any()


def test_flat_windows_are_not_taken_for_replays() -> None:
    pump_at_rest = np.zeros(50)
    pump_at_rest[10] = 40.0
    assert not replay_runs(pump_at_rest[:, None], (0,)).any()


def test_streaming_and_table_runs_agree() -> None:
    values = np.column_stack([_noisy(80, 3), np.tile(_noisy(20, 4), 4)])
    tracker = ReplayTracker((0, 1))
    streamed = np.array([tracker.push(row) for row in values])
    np.testing.assert_array_equal(streamed, replay_runs(values, (0, 1)))
    assert streamed[:, 1].max() > 40 and streamed[:, 0].max() == 0


def test_limits_score_runs_beyond_the_normal_longest_above_one() -> None:
    limits = ReplayLimits(tags=(0, 1), longest=np.array([0.0, 3.0]))
    scores = limits.scores(np.array([1.0, 3.0]))
    assert scores[0] > 1 > scores[1]
    assert limits.scores(np.array([0.0, 4.0]))[1] > 1


def test_attack_6_replay_of_t4_is_caught_within_hours(
    model: WaterAttackModel, attacked: ScadaTable
) -> None:
    tag = model.replay.tags.index(attacked.columns.index("L_T4"))
    scores = model.replay.scores(replay_runs(attacked.values, model.replay.tags))[:, tag]
    inside = (attacked.ts >= parse_time("06/12/16 07")) & (attacked.ts <= parse_time("10/12/16 04"))
    hits = np.flatnonzero(scores[inside] > 1)
    assert hits[0] <= 3  # the physics sees nothing until hour 10
    assert len(hits) > 0.9 * inside.sum()
    before = attacked.ts < parse_time("06/12/16 00")
    assert not (scores[before] > 1).any()

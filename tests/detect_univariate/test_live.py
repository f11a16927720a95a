"""The ensemble live: windowed averages, buffered scoring, alerts, and the same scores in batch."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.detect.model import Alert
from civicguard.detect.univariate_live import (
    PatternAnomalyDetector,
    PatternSettings,
    WindowedEnsemble,
    score_series,
)
from civicguard.ingest.model import ReadingBatch
from tests.detect.traffic import START, CityTraffic

CATALOG = demo_catalog()
STREAM = "power.substation"


def test_windows_average_their_readings_whatever_the_batches() -> None:
    """Window means and counts match a plain group-by, however the points are split up."""
    rng = np.random.default_rng(4)
    n = 3000
    slots = rng.integers(0, 7, n)
    ts = np.sort(rng.uniform(0.0, 900.0, n))
    values = rng.normal(5.0, 2.0, n)
    settings = PatternSettings(window_s=10.0, warmup=20)
    expected: dict[tuple[int, float], list[float]] = defaultdict(list)
    for s, t, v in zip(slots.tolist(), ts.tolist(), values.tolist(), strict=True):
        expected[(s, (t // 10.0 + 1.0) * 10.0)].append(v)
    whole = WindowedEnsemble(settings)
    whole.add(slots, ts, values)
    whole.close()
    one = whole.score()
    split = WindowedEnsemble(settings)
    bounds = np.sort(rng.integers(0, n, 40))
    parts = []
    for chunk in np.split(np.arange(n), bounds):
        split.add(slots[chunk], ts[chunk], values[chunk])
        parts.append(split.score())  # score between batches too: only closed windows go
    split.close()
    parts.append(split.score())
    got = {
        (int(s), float(t)): (float(v), int(c))
        for p in parts
        for s, t, v, c in zip(p.slots, p.ts, p.values, p.count, strict=True)
    }
    whole_windows = {
        (int(s), float(t)): (float(v), int(c))
        for s, t, v, c in zip(one.slots, one.ts, one.values, one.count, strict=True)
    }
    assert set(got) == set(whole_windows) == set(expected)
    keys = sorted(got)
    assert [got[k][1] for k in keys] == [whole_windows[k][1] for k in keys]
    # Sums gathered in other pieces differ in the last bits only.
    assert [got[k][0] for k in keys] == pytest.approx([whole_windows[k][0] for k in keys])
    for key, readings in expected.items():
        assert got[key][1] == len(readings)
        assert got[key][0] == pytest.approx(np.mean(readings), rel=1e-12)
    by_slot = {
        s: sorted((t, score) for (ss, t), score in _scores(parts).items() if ss == s)
        for s in range(7)
    }
    whole_scores = _scores([one])
    for s, rows in by_slot.items():
        assert [score for _, score in rows] == pytest.approx(
            [whole_scores[(s, t)] for t, _ in rows], rel=1e-9, abs=1e-12
        )


def _scores(parts: list) -> dict[tuple[int, float], float]:  # type: ignore[type-arg]
    return {
        (int(s), float(t)): float(x)
        for p in parts
        for s, t, x in zip(p.slots, p.ts, p.scores, strict=True)
    }


def test_a_late_reading_joins_the_open_window() -> None:
    windows = WindowedEnsemble(PatternSettings(window_s=10.0))
    zero = np.zeros(1, dtype=np.intp)
    windows.add(zero, np.array([25.0]), np.array([2.0]))
    windows.add(zero, np.array([3.0]), np.array([4.0]))  # late: window [0, 10) is gone
    windows.add(zero, np.array([31.0]), np.array([9.0]))
    verdicts = windows.score()
    assert verdicts.ts.tolist() == [30.0]
    assert verdicts.values.tolist() == [3.0]
    assert verdicts.count.tolist() == [2.0]


def test_closed_windows_wait_for_the_buffer_to_be_due() -> None:
    windows = WindowedEnsemble(PatternSettings(window_s=1.0, max_pending=5, max_delay_s=2.0))
    slots = np.arange(3)
    windows.add(slots, np.full(3, 0.5), np.ones(3), now=100.0)
    windows.add(slots, np.full(3, 1.5), np.ones(3), now=100.5)
    assert windows.pending == 3
    assert not windows.due(102.4)  # the first window closed at 100.5
    assert windows.due(102.5)  # waited long enough
    windows.add(slots, np.full(3, 2.5), np.ones(3), now=101.0)
    assert windows.pending == 6
    assert windows.due(101.0)  # full enough
    assert len(windows.score()) == 6
    assert windows.pending == 0
    assert not windows.due(1e9)


def _run(
    detector: PatternAnomalyDetector,
    traffic: CityTraffic,
    minutes: float,
    shift: dict[tuple[int, str], float] | None = None,
    shift_from: float = np.inf,
    alter: Callable[[ReadingBatch, np.ndarray], None] | None = None,
) -> list[Alert]:
    """Every device of ``STREAM`` reporting once a second in batches of five seconds."""
    devices = traffic.devices[STREAM]
    seconds = np.arange(int(minutes * 60), dtype=np.float64)
    alerts: list[Alert] = []
    for chunk in np.array_split(seconds, len(seconds) // 5):
        index = np.tile(np.arange(len(devices)), len(chunk))
        ts = START + np.repeat(chunk, len(devices))
        batch = traffic.batch(STREAM, ts, index, np.repeat(chunk.astype(np.int64), len(devices)))
        for (device, name), delta in (shift or {}).items():
            rows = (index == device) & (ts >= START + shift_from)
            batch.values[rows, batch.fields.index(name)] += delta
        if alter is not None:
            alter(batch, index)
        now = float(ts.max()) + 0.5
        alerts.extend(detector.process(batch, now))
        alerts.extend(detector.tick(now))
    return alerts


def test_a_small_sustained_shift_alerts_once_on_its_device_and_field() -> None:
    """A step of 0.4 kV, inside the normal band, on one substation: one alert, explained."""
    traffic = CityTraffic(CATALOG, per_stream=5, seed=3, streams=(STREAM,))
    detector = PatternAnomalyDetector(CATALOG, traffic.lookup)
    at = 30 * 60.0
    alerts = _run(detector, traffic, 40, shift={(2, "voltage"): 0.4}, shift_from=at)
    assert [(a.device_id, a.evidence["field"]) for a in alerts] == [
        (traffic.devices[STREAM][2].id, "voltage")
    ]
    (found,) = alerts
    settings = detector.settings
    # Found within a couple of windows plus the buffer's delay.
    assert START + at < found.ts <= START + at + 3 * settings.window_s
    assert found.evidence["value"] - found.evidence["baseline_mean"] == pytest.approx(0.4, abs=0.15)
    assert found.evidence["score"] >= settings.threshold
    members = found.evidence["members"]
    assert set(members) == set(detector._states[STREAM].windows.member_names)
    assert max(m["sigmas"] for m in members.values()) >= settings.min_sigmas
    json.dumps(found.evidence, allow_nan=False)
    assert traffic.devices[STREAM][2].id in found.explanation
    assert "voltage" in found.explanation.lower()
    assert found.title.startswith("Unusual pattern: high voltage")
    assert found.kind == "pattern_anomaly"


def rhythm(device: int, break_at: float) -> Callable[[ReadingBatch, np.ndarray], None]:
    """One substation's voltage in a 400-s triangle across its normal band, until ``break_at``
    s, then a square wave of the same period and levels (its mean over a period unchanged)."""
    noise = np.random.default_rng(8)

    def alter(batch: ReadingBatch, index: np.ndarray) -> None:
        mine = index == device
        t = batch.ts[mine] - START
        phase = (t / 400.0) % 1.0
        triangle = 10.4 + 1.2 * np.abs(2.0 * phase - 1.0)
        square = np.where(phase < 0.5, 10.4, 11.6)
        shaped = np.where(t >= break_at, square, triangle)
        batch.values[mine, batch.fields.index("voltage")] = shaped + noise.normal(0, 0.02, t.size)

    return alter


def test_a_broken_rhythm_alerts_as_a_new_shape_that_the_ensemble_alone_misses() -> None:
    """Triangle to square wave at 45 min: the same levels, another shape; found by the
    resonance laid over the ensemble (it judges once a stream's first 35 minutes are learned),
    and by nothing without it."""
    at = 45 * 60.0
    traffic = CityTraffic(CATALOG, per_stream=3, seed=3, streams=(STREAM,))
    detector = PatternAnomalyDetector(CATALOG, traffic.lookup)
    alerts = _run(detector, traffic, 50, alter=rhythm(1, at))
    assert [(a.device_id, a.evidence["field"]) for a in alerts] == [
        (traffic.devices[STREAM][1].id, "voltage")
    ]
    (found,) = alerts
    assert START + at < found.ts <= START + at + 60.0
    shape = found.evidence["shape"]
    assert shape["alarm"] is True
    assert found.kind == "pattern_shape"
    assert shape["laid_score"] >= detector.settings.shape_threshold
    assert 0.0 < shape["confidence"] <= 1.0
    assert "fits none of the shapes it has learned" in found.explanation
    assert found.title.startswith("Unusual pattern: voltage at")
    json.dumps(found.evidence, allow_nan=False)

    traffic = CityTraffic(CATALOG, per_stream=3, seed=3, streams=(STREAM,))
    alone = PatternAnomalyDetector(CATALOG, traffic.lookup, PatternSettings(shape_threshold=None))
    assert _run(alone, traffic, 50, alter=rhythm(1, at)) == []


def test_normal_traffic_for_an_hour_raises_nothing() -> None:
    traffic = CityTraffic(CATALOG, per_stream=5, seed=5, streams=(STREAM,))
    detector = PatternAnomalyDetector(CATALOG, traffic.lookup)
    assert [a.title for a in _run(detector, traffic, 60)] == []


def test_batch_scoring_of_a_series_matches_the_live_detector() -> None:
    """score_series over one device's stored voltage gives the windows and scores live gave."""
    traffic = CityTraffic(CATALOG, per_stream=2, seed=6, streams=(STREAM,))
    live = PatternAnomalyDetector(CATALOG, traffic.lookup)
    state = live._states[STREAM]
    recorded: list = []  # type: ignore[type-arg]
    score = state.windows.score

    def keep():  # type: ignore[no-untyped-def]
        verdicts = score()
        recorded.append(verdicts)
        return verdicts

    state.windows.score = keep  # type: ignore[method-assign]
    stored_ts: list[float] = []
    stored_values: list[float] = []
    devices = traffic.devices[STREAM]
    seconds = np.arange(1800, dtype=np.float64)
    rng = np.random.default_rng(9)
    for chunk in np.array_split(seconds, 97):
        index = np.tile(np.arange(len(devices)), len(chunk))
        ts = START + np.repeat(chunk, len(devices)) + rng.uniform(0, 0.9, len(index))
        batch = traffic.batch(STREAM, ts, index, np.arange(len(index)))
        batch.values[ts > START + 1500, batch.fields.index("voltage")] += 0.3
        live.process(batch, float(ts.max()))
        mine = index == 0
        stored_ts.extend(ts[mine].tolist())
        stored_values.extend(batch.values[mine, batch.fields.index("voltage")].tolist())
    state.windows.close()
    keep()
    slot = state.devices.lookup((devices[0].id,))[0] * len(state.columns)
    live_scores = {
        float(t): float(x)
        for v in recorded
        for s, t, x in zip(v.slots, v.ts, v.scores, strict=True)
        if s == slot
    }
    batch_scores = score_series(np.array(stored_ts[::-1]), np.array(stored_values[::-1]))
    assert dict(zip(batch_scores.ts.tolist(), batch_scores.scores.tolist(), strict=True)) == (
        pytest.approx(live_scores, rel=1e-9, abs=1e-12)
    )
    assert batch_scores.alarm.any()

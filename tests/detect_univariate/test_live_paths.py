"""The live detector's quick paths give what the plain ones give.

Windows: an upload of one device in order skips the sort, and open windows close without set
arithmetic; both are checked against a plain loop over points. Scoring: buffers sharing one
ensemble are scored in the same steps; their verdicts are checked against buffers scored each
with an ensemble of its own.
"""

from __future__ import annotations

import numpy as np
import pytest

from civicguard.detect.univariate_live import (
    PatternSettings,
    SharedEnsemble,
    WindowedEnsemble,
    WindowVerdicts,
)

SETTINGS = PatternSettings(window_s=10.0, warmup=20, max_pending=10**9)

Window = tuple[int, float]


class PlainWindows:
    """The windowing rule, point by point: a later window closes the open one, an earlier
    point joins the open one."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.open: dict[int, list[float]] = {}  # slot -> [window, sum, count, seq]
        self.closed: list[tuple[Window, float, int, float]] = []

    def add(self, slots: np.ndarray, ts: np.ndarray, values: np.ndarray, seq: np.ndarray) -> None:
        rows = zip(slots.tolist(), ts.tolist(), values.tolist(), seq.tolist(), strict=True)
        for s, t, v, q in rows:
            if not (np.isfinite(t) and np.isfinite(v)):
                continue
            window = float(np.floor(t / self.window_s))
            held = self.open.get(s)
            if held is not None and window > held[0]:
                self._close(s)
                held = None
            if held is None:
                self.open[s] = [window, v, 1.0, q]
            else:
                held[1] += v
                held[2] += 1.0
                held[3] = max(held[3], q)

    def close(self) -> None:
        for s in list(self.open):
            self._close(s)

    def _close(self, s: int) -> None:
        window, total, count, seq = self.open.pop(s)
        self.closed.append(((s, (window + 1.0) * self.window_s), total / count, int(count), seq))


def _batches(rng: np.random.Generator, slots: int, batches: int) -> list[tuple[np.ndarray, ...]]:
    """Random batches: one slot's run in order, several slots interleaved, late points, NaNs.

    Within a batch each slot's points come in time order, as a device sends them; across
    batches a slot's points may go back in time (late readings).
    """
    clock = np.zeros(slots)
    made = []
    for b in range(batches):
        kind = b % 3
        n = int(rng.integers(1, 200))
        if kind == 0:  # one device's upload: field by field, in time order
            fields = int(rng.integers(1, 4))
            base = int(rng.integers(0, slots - fields + 1))
            t = clock[base] + np.cumsum(rng.uniform(0.0, 3.0, n))
            s = np.repeat(np.arange(base, base + fields), n)
            ts = np.tile(t, fields)
            clock[base : base + fields] = t[-1]
        else:  # many devices at once, some readings late
            s = rng.integers(0, slots, n)
            ts = np.empty(n)
            for slot in np.unique(s):
                mine = s == slot
                late = -25.0 if kind == 2 and rng.random() < 0.5 else 0.0
                ts[mine] = clock[slot] + late + np.cumsum(rng.uniform(0.0, 6.0, mine.sum()))
                clock[slot] = max(clock[slot], ts[mine].max())
        values = rng.normal(10.0, 1.0, s.size)
        values[rng.random(s.size) < 0.02] = np.nan
        seq = np.arange(s.size, dtype=np.float64) + 1000.0 * b
        made.append((s.astype(np.intp), ts, values, seq))
    return made


def _windows(verdicts: list[WindowVerdicts]) -> dict[Window, tuple[float, int, float]]:
    return {
        (int(s), float(t)): (float(v), int(c), float(q))
        for got in verdicts
        for s, t, v, c, q in zip(got.slots, got.ts, got.values, got.count, got.seq, strict=True)
    }


@pytest.mark.parametrize("seed", range(6))
def test_windows_match_a_plain_loop_over_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    plain = PlainWindows(SETTINGS.window_s)
    windows = WindowedEnsemble(SETTINGS)
    scored = []
    for slots, ts, values, seq in _batches(rng, slots=9, batches=60):
        plain.add(slots, ts, values, seq)
        windows.add(slots, ts, values, seq)
        if rng.random() < 0.3:
            scored.append(windows.score())
    plain.close()
    windows.close()
    scored.append(windows.score())
    got = _windows(scored)
    want = {key: (mean, count, seq) for key, mean, count, seq in plain.closed}
    assert len(plain.closed) == len(want) == sum(len(v) for v in scored)
    assert set(got) == set(want)
    for key, (mean, count, seq) in want.items():
        assert got[key][1:] == (count, seq), key
        assert got[key][0] == pytest.approx(mean, rel=1e-12), key


def _fields(verdicts: WindowVerdicts) -> dict[str, np.ndarray]:
    return {name: getattr(verdicts, name) for name in WindowVerdicts.__dataclass_fields__}


@pytest.mark.parametrize("seed", range(2))
def test_buffers_scored_together_get_the_verdicts_of_buffers_scored_apart(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    sizes = (6, 3, 9)
    # The first buffer's fields never move enough to matter: its windows are never alarms.
    material = [np.full(3, 100.0), np.array([0.1]), np.array([0.0, 3.0, 0.2])]
    shared = SharedEnsemble(SETTINGS)
    together = [WindowedEnsemble(SETTINGS, m, shared) for m in material]
    apart = [WindowedEnsemble(SETTINGS, m) for m in material]
    got: list[list[WindowVerdicts]] = [[] for _ in sizes]
    want: list[list[WindowVerdicts]] = [[] for _ in sizes]
    streams = [_batches(rng, slots=n, batches=80) for n in sizes]
    for b in range(80):
        for i, batches in enumerate(streams):
            slots, ts, values, seq = batches[b]
            if b > 50 and i != 1:  # a shift, so that some windows are alarms
                values = values + np.where(slots % 2 == 0, 4.0, 0.0)
            together[i].add(slots, ts, values, seq)
            apart[i].add(slots, ts, values, seq)
        if rng.random() < 0.2:
            # One buffer scores all; the others hand over what was scored for them later.
            lead = int(rng.integers(0, len(sizes)))
            got[lead].append(together[lead].score())
            for i in range(len(sizes)):
                want[i].append(apart[i].score())
        if rng.random() < 0.2:
            for i in range(len(sizes)):
                got[i].append(together[i].score())
    for i in range(len(sizes)):
        together[i].close()
        apart[i].close()
        got[i].append(together[i].score())
        want[i].append(apart[i].score())
    alarms = blocked = 0
    for mine, theirs, bar in zip(got, want, material, strict=True):
        joined = [_fields(v) for v in (_join(mine), _join(theirs))]
        assert joined[0]["slots"].size > 0
        for name, expected in joined[1].items():
            if name == "alarm":
                assert joined[0][name].tolist() == expected.tolist()
            else:
                np.testing.assert_allclose(joined[0][name], expected, rtol=1e-12, atol=1e-15)
        alarms += int(joined[0]["alarm"].sum())
        v = joined[0]
        sure = (v["scores"] >= SETTINGS.threshold) & (
            v["surprises"].max(axis=1) >= SETTINGS.min_sigmas
        )
        material = np.abs(v["values"] - v["expected"]) >= bar[v["slots"] % bar.size]
        new_shape = (v["shape"] > 0) & (v["laid"] >= SETTINGS.shape_threshold) & ~sure
        assert v["shape_alarm"].tolist() == (new_shape & material).tolist()
        assert v["alarm"].tolist() == ((sure | new_shape) & material).tolist()
        blocked += int(((sure | new_shape) & ~material).sum())
    assert alarms > 0
    assert blocked > 0


def _join(verdicts: list[WindowVerdicts]) -> WindowVerdicts:
    """Verdicts in one order (slot, then window end), whenever they were scored."""
    fields = {
        name: np.concatenate([getattr(v, name) for v in verdicts])
        for name in WindowVerdicts.__dataclass_fields__
    }
    order = np.lexsort((fields["ts"], fields["slots"]))
    return WindowVerdicts(**{name: column[order] for name, column in fields.items()})

"""The sequence guard: retransmissions once and silent, replays refused, memory bounded.

The guard remembers only the window and the device's last body; everything older it asks the
store about. Together they must judge exactly as a guard that remembered every reading forever.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from civicguard.ingest.model import ReadingBatch, Transport
from civicguard.ingest.sequence import Fingerprinter, SequenceGuard, Verdict

NEW, DUPLICATE, REPLAY = Verdict.NEW, Verdict.DUPLICATE, Verdict.REPLAY


class Store:
    """Stored readings of one device: seq -> fingerprint, as the readings table keeps them."""

    def __init__(self) -> None:
        self.rows: dict[int, int | None] = {}
        self.asked = 0

    def lookup(self, device_id: str, seqs: Sequence[int]) -> dict[int, int | None]:
        self.asked += 1
        return {s: self.rows[s] for s in seqs if s in self.rows}


class Everything:
    """The judgement of a guard that never forgets: what the real one must agree with."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.high: int | None = None
        self.seen: dict[int, int] = {}

    def judge(self, body: list[tuple[int, int]]) -> list[Verdict]:
        out = []
        for seq, fingerprint in body:
            if self.high is None or seq > self.high:
                verdict = NEW
            elif seq in self.seen:
                verdict = DUPLICATE if self.seen[seq] == fingerprint else REPLAY
            elif seq > self.high - self.window:
                verdict = NEW
            else:
                verdict = REPLAY
            if verdict is NEW:
                self.seen[seq] = fingerprint
                self.high = seq if self.high is None else max(self.high, seq)
            out.append(verdict)
        return out


def _judge(guard: SequenceGuard, body: list[tuple[int, int]]) -> list[Verdict]:
    seqs = np.array([s for s, _ in body], dtype=np.int64)
    prints = np.array([p for _, p in body], dtype=np.int64)
    return guard.judge("d", seqs, prints)


bodies = st.lists(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 2)), min_size=1, max_size=40),
    max_size=12,
)


@settings(max_examples=300)
@given(bodies, st.integers(0, 1), st.integers(1, 6))
def test_memory_and_store_judge_as_a_guard_that_never_forgets(
    uploads: list[list[tuple[int, int]]], in_flight: int, span: int
) -> None:
    # The store lags ``in_flight`` bodies behind ingest (the last one may still be on the
    # event log); the guard must remember all of that body (span at least its size) then.
    store = Store()
    guard = SequenceGuard(window=8, span=span + 40 * in_flight, stored=store.lookup)
    reference = Everything(window=8)
    pending: list[list[tuple[int, int]]] = []
    for body in uploads:
        verdicts = _judge(guard, body)
        assert verdicts == reference.judge(body)
        pending.append([r for r, v in zip(body, verdicts, strict=True) if v is NEW])
        while len(pending) > in_flight:
            store.rows.update(pending.pop(0))


@given(bodies)
def test_a_restarted_guard_judges_stored_numbers_from_the_store(
    uploads: list[list[tuple[int, int]]],
) -> None:
    store = Store()
    reference = Everything(window=8)
    for body in uploads:
        # A new guard for every body: a restart between each, resuming from the store.
        guard = SequenceGuard(
            window=8,
            resume=lambda _: max(store.rows) if store.rows else None,
            stored=store.lookup,
        )
        verdicts = _judge(guard, body)
        assert verdicts == reference.judge(body)
        store.rows.update(r for r, v in zip(body, verdicts, strict=True) if v is NEW)


def test_a_retried_body_of_the_batch_limit_is_all_duplicates_without_the_store() -> None:
    store = Store()
    guard = SequenceGuard(window=32, span=5000, stored=store.lookup)
    body = [(seq, seq * 7919) for seq in range(1, 5001)]
    assert _judge(guard, body) == [NEW] * 5000
    assert _judge(guard, body) == [DUPLICATE] * 5000
    changed = [*body[:100], (101, 1), *body[101:]]
    assert _judge(guard, changed) == [DUPLICATE] * 100 + [REPLAY] + [DUPLICATE] * 4899
    assert store.asked == 0  # nothing stored yet: memory alone judged the retries


def test_retransmission_replay_and_late_arrival() -> None:
    guard = SequenceGuard(window=4)
    assert guard.check("d", 10, 1) is NEW
    assert _judge(guard, [(11, 5), (12, 6), (13, 7)]) == [NEW] * 3
    assert guard.check("d", 13, 7) is DUPLICATE
    assert guard.check("d", 13, 8) is REPLAY
    assert guard.check("d", 9, 1) is REPLAY
    assert _judge(guard, [(14, 0), (14, 0), (14, 1)]) == [NEW, DUPLICATE, REPLAY]
    assert guard.check("d", 20, 1) is NEW
    assert guard.check("d", 18, 1) is NEW  # late, inside the window
    assert guard.check("d", 16, 1) is REPLAY  # below the window


def test_readings_stored_without_a_fingerprint_are_judged_by_the_window() -> None:
    store = Store()
    store.rows = dict.fromkeys(range(1, 101))  # stored before fingerprints existed
    guard = SequenceGuard(window=8, resume=lambda _: 100, stored=store.lookup)
    assert guard.check("d", 99, 5) is DUPLICATE  # inside the window: stored, content unknown
    assert guard.check("d", 50, 5) is REPLAY  # below it, as before fingerprints
    assert guard.check("d", 101, 5) is NEW


def test_memory_per_device_is_the_window_and_the_last_body() -> None:
    guard = SequenceGuard(window=32, span=5000)
    for seq in range(1, 2001):
        guard.check("single", seq, seq)
    assert guard.remembered("single") == 32
    for start in range(1, 20_001, 5000):
        run = np.arange(start, start + 5000, dtype=np.int64)
        guard.judge("gateway", run, run)
    assert guard.remembered("gateway") == 5000
    scrambled = np.array([*range(30_000, 25_000, -1)], dtype=np.int64)
    guard.judge("unordered", scrambled, scrambled)
    assert guard.remembered("unordered") <= 5000 + 32


def test_a_failed_publish_is_forgotten() -> None:
    guard = SequenceGuard(window=4)
    assert _judge(guard, [(1, 1), (2, 2), (3, 3)]) == [NEW] * 3
    guard.forget("d", [2, 3])
    assert _judge(guard, [(2, 2), (3, 3)]) == [NEW, NEW]


def _batch(ts: list[float], load: list[float], plates: list[str] | None = None) -> ReadingBatch:
    n = len(ts)
    return ReadingBatch(
        stream="s",
        fields=("load",),
        device_ids=("d",) * n,
        seq=np.arange(n, dtype=np.int64),
        ts=np.array(ts),
        received_at=np.zeros(n),
        values=np.array(load, dtype=np.float64).reshape(n, 1),
        text={} if plates is None else {"plate": plates},
        cells=("",) * n,
        transport=Transport.HTTP,
    )


def test_fingerprints_follow_content_and_key() -> None:
    key = bytes(range(32))
    one, same, other_key = Fingerprinter(key), Fingerprinter(key), Fingerprinter(b"k" * 32)
    batch = _batch([1.0, 1.0, 2.0], [5.0, 6.0, 5.0], ["AB123", "AB123", "AB123"])
    prints = one.of(batch)
    assert prints.dtype == np.int64 and len(set(prints.tolist())) == 3  # value, time differ
    assert same.of(batch).tolist() == prints.tolist()  # the same key: the same prints
    assert set(other_key.of(batch).tolist()).isdisjoint(prints.tolist())
    plate_changed = _batch([1.0, 1.0, 2.0], [5.0, 6.0, 5.0], ["AB124", "AB123", "AB123"])
    assert one.of(plate_changed).tolist()[1:] == prints.tolist()[1:]
    assert one.of(plate_changed)[0] != prints[0]

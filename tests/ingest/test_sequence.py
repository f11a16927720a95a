"""The sequence guard: retransmissions once and silent, replays refused, memory bounded.

The guard remembers the window behind a device's highest number and the device's last body;
a number it does not remember is new inside the window and a replay below it, even when its
content was once stored (captured traffic sent again). A restart changes no verdict: a device
is recalled from the store when the guard first meets it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from civicguard.ingest.model import ReadingBatch, Transport
from civicguard.ingest.sequence import Fingerprinter, SequenceGuard, Verdict

NEW, DUPLICATE, REPLAY = Verdict.NEW, Verdict.DUPLICATE, Verdict.REPLAY


class Store:
    """A device's stored readings as the readings table keeps them: seq -> (print, received)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[int | None, float]] = {}
        self.recalls = 0

    def recall(
        self, device_id: str, window: int, limit: int
    ) -> list[tuple[int, int | None, float]]:
        """The guard's contract: the window behind the highest and the highest's body."""
        self.recalls += 1
        if not self.rows:
            return []
        high = max(self.rows)
        stamp = self.rows[high][1]
        rows = [
            (seq, fp, at)
            for seq, (fp, at) in sorted(self.rows.items(), reverse=True)
            if seq > high - window or at == stamp
        ]
        return rows[:limit]


class Model:
    """The rule written plainly: remembered are the window, this body and the last body."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.high: int | None = None
        self.accepted: dict[int, int] = {}
        self.last_body: dict[int, int] = {}

    def judge(self, body: list[tuple[int, int]]) -> list[Verdict]:
        out = []
        this: dict[int, int] = {}
        fresh = False
        for seq, fingerprint in body:
            if self.high is None or seq > self.high:
                verdict = NEW
            else:
                inside = seq > self.high - self.window
                was = this.get(seq)
                if was is None and inside:
                    was = self.accepted.get(seq)
                if was is None:
                    was = self.last_body.get(seq)
                if was is not None:
                    verdict = DUPLICATE if was == fingerprint else REPLAY
                else:
                    verdict = NEW if inside else REPLAY
            if verdict is NEW:
                self.accepted[seq] = fingerprint
                self.high = seq if self.high is None else max(self.high, seq)
                fresh = True
            if verdict is not REPLAY:
                this[seq] = fingerprint
            out.append(verdict)
        if fresh:  # a body with nothing new leaves the last body as it was
            self.last_body = this
        return out


def _judge(guard: SequenceGuard, body: list[tuple[int, int]]) -> list[Verdict]:
    seqs = np.array([s for s, _ in body], dtype=np.int64)
    prints = np.array([p for _, p in body], dtype=np.int64)
    return guard.judge("d", seqs, prints)


reading = st.tuples(st.integers(0, 200), st.integers(0, 2))
#: Bodies of many readings, and single readings (as MQTT devices send) rising one by one.
bodies = st.lists(
    st.one_of(
        st.lists(reading, min_size=1, max_size=40),
        st.lists(reading, min_size=1, max_size=1),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(bodies)
def test_the_guard_judges_as_the_rule_says(uploads: list[list[tuple[int, int]]]) -> None:
    guard = SequenceGuard(window=8, span=40)
    model = Model(window=8)
    for body in uploads:
        assert _judge(guard, body) == model.judge(body)
        assert guard.remembered("d") <= 2 * 8 + 1 + 40


@settings(max_examples=300)
@given(st.lists(st.sets(st.integers(1, 30), min_size=1, max_size=40), max_size=10))
def test_a_restart_between_any_two_messages_changes_no_verdict(steps: list[set[int]]) -> None:
    # A device sends rising bodies (numbers with gaps); each is sent, retried, re-sent with its
    # first reading changed, and retried again. A guard started just before each message
    # (recalled from the store) must judge as one that ran all along.
    store = Store()
    running = SequenceGuard(window=8, span=40)
    top = 0
    for n, gaps in enumerate(steps):
        seqs = [top + g for g in sorted(gaps)]
        top = seqs[-1]
        body = [(seq, seq * 31 + 7) for seq in seqs]
        changed = [(body[0][0], -1), *body[1:]]
        for message in (body, body, changed, body):
            restarted = SequenceGuard(window=8, span=40, recall=store.recall)
            verdicts = _judge(restarted, message)
            assert verdicts == _judge(running, message)
            store.rows.update(
                (seq, (fp, float(n)))
                for (seq, fp), v in zip(message, verdicts, strict=True)
                if v is NEW
            )


def test_captured_traffic_sent_again_below_the_window_is_a_replay() -> None:
    store = Store()
    guard = SequenceGuard(window=4, recall=store.recall)
    assert _judge(guard, [(1, 11)]) == [NEW]
    store.rows[1] = (11, 1.0)
    for seq in range(2, 10):
        assert guard.check("d", seq, seq) is NEW
        store.rows[seq] = (seq, float(seq))
    assert guard.check("d", 1, 11) is REPLAY  # the same content as stored: still a replay
    assert SequenceGuard(window=4, recall=store.recall).check("d", 1, 11) is REPLAY


def test_a_retried_body_of_the_batch_limit_is_all_duplicates_even_after_a_restart() -> None:
    store = Store()
    guard = SequenceGuard(window=32, span=5000, recall=store.recall)
    body = [(seq, seq * 7919) for seq in range(1, 5001)]
    assert _judge(guard, body) == [NEW] * 5000
    assert _judge(guard, body) == [DUPLICATE] * 5000
    changed = [*body[:100], (101, 1), *body[101:]]
    assert _judge(guard, changed) == [DUPLICATE] * 100 + [REPLAY] + [DUPLICATE] * 4899
    assert store.recalls == 1  # only when the guard first met the device
    store.rows = {seq: (fp, 1.0) for seq, fp in body}
    restarted = SequenceGuard(window=32, span=5000, recall=store.recall)
    assert _judge(restarted, body) == [DUPLICATE] * 5000
    again = SequenceGuard(window=32, span=5000, recall=store.recall)
    assert _judge(again, changed) == [DUPLICATE] * 100 + [REPLAY] + [DUPLICATE] * 4899


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


def test_a_single_reading_that_left_the_window_is_no_longer_a_retransmission() -> None:
    guard = SequenceGuard(window=8)
    for seq in range(1, 11):
        assert guard.check("d", seq, seq) is NEW  # one reading a message, as MQTT devices send
    assert guard.check("d", 1, 1) is REPLAY  # unchanged, but older than the window and body
    assert guard.check("d", 3, 3) is DUPLICATE
    assert guard.check("d", 10, 10) is DUPLICATE


def test_readings_stored_without_a_fingerprint_are_judged_by_the_window() -> None:
    store = Store()
    store.rows = dict.fromkeys(range(1, 101), (None, 1.0))  # stored before fingerprints existed
    guard = SequenceGuard(window=8, recall=store.recall)
    assert guard.check("d", 99, 5) is NEW  # inside the window: as the first version judged
    assert guard.check("d", 50, 5) is REPLAY  # below it
    assert guard.check("d", 101, 5) is NEW


def test_memory_per_device_is_the_window_and_the_last_body() -> None:
    guard = SequenceGuard(window=32, span=5000)
    for seq in range(1, 2001):
        guard.check("single", seq, seq)
    assert 32 <= guard.remembered("single") <= 2 * 32 + 1
    for start in range(1, 20_001, 5000):
        run = np.arange(start, start + 5000, dtype=np.int64)
        guard.judge("gateway", run, run)
    assert 5000 <= guard.remembered("gateway") <= 5000 + 2 * 32 + 1
    scrambled = np.array([*range(30_000, 25_000, -1)], dtype=np.int64)
    guard.judge("unordered", scrambled, scrambled)
    assert guard.remembered("unordered") <= 5000 + 2 * 32


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

"""The sequence guard: duplicates once, replays refused, fast path equal to the slow one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from civicguard.ingest.sequence import SequenceGuard, Verdict


@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 120), st.integers(0, 2)), min_size=1, max_size=40),
        max_size=12,
    )
)
def test_runs_agree_with_reading_by_reading(uploads: list[list[tuple[int, int]]]) -> None:
    fast, slow = SequenceGuard(window=8), SequenceGuard(window=8)
    for upload in uploads:
        seqs = [s for s, _ in upload]
        prints = [p for _, p in upload]
        expected = [slow.check("d", s, p) for s, p in upload]
        got = fast.check_run("d", seqs, prints.__getitem__)
        if got is None:
            got = [fast.check("d", s, p) for s, p in upload]
        assert got == expected


def test_retransmission_replay_and_late_arrival() -> None:
    guard = SequenceGuard(window=4)
    assert guard.check("d", 10, 1) is Verdict.NEW
    assert guard.check_run("d", [11, 12, 13], lambda i: 5 + i) == [Verdict.NEW] * 3
    assert guard.check("d", 13, 7) is Verdict.DUPLICATE
    assert guard.check("d", 13, 8) is Verdict.REPLAY
    assert guard.check("d", 9, 1) is Verdict.REPLAY
    assert guard.check_run("d", [14, 14], lambda i: 0) is None  # not strictly increasing
    assert guard.check("d", 20, 1) is Verdict.NEW
    assert guard.check("d", 18, 1) is Verdict.NEW  # late, inside the window
    assert guard.check("d", 16, 1) is Verdict.REPLAY  # below the window

"""Per-device sequence numbers: store duplicates once, refuse replays.

A device numbers its messages. Within a sliding window behind the highest number seen, a
number arrives once (late arrivals are fine); the same number with the same content again is a
retransmission and is stored once; a number below the window, or a reused number with different
content, is a replay and is refused (and raises an alert downstream).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from enum import IntEnum


class Verdict(IntEnum):
    """What a sequence number means for one device."""

    NEW = 0
    DUPLICATE = 1
    REPLAY = 2


class SequenceGuard:
    """Tracks each device's highest sequence number and the recent window behind it.

    >>> guard = SequenceGuard(window=4)
    >>> [guard.check("d", s, 1) for s in (1, 2, 2, 5)]
    [<Verdict.NEW: 0>, <Verdict.NEW: 0>, <Verdict.DUPLICATE: 1>, <Verdict.NEW: 0>]
    >>> guard.check("d", 1, 1)
    <Verdict.REPLAY: 2>
    """

    def __init__(self, window: int = 32, resume: Callable[[str], int | None] | None = None) -> None:
        self.window = window
        self._resume = resume
        self._high: dict[str, int] = {}
        self._recent: dict[str, dict[int, int]] = {}

    def check(self, device_id: str, seq: int, fingerprint: int) -> Verdict:
        """Classify ``seq`` from ``device_id``; ``fingerprint`` identifies the content."""
        high = self._high.get(device_id)
        if high is None:
            high = self._resume(device_id) if self._resume else None
            if high is None:
                self._high[device_id] = seq
                self._recent[device_id] = {seq: fingerprint}
                return Verdict.NEW
            self._high[device_id] = high
            self._recent[device_id] = {}
        recent = self._recent[device_id]
        if seq > high:
            self._high[device_id] = seq
            recent[seq] = fingerprint
            floor = seq - self.window
            if len(recent) > 2 * self.window:
                for old in [s for s in recent if s <= floor]:
                    del recent[old]
            return Verdict.NEW
        if seq <= high - self.window:
            return Verdict.REPLAY
        seen = recent.get(seq)
        if seen is None:
            recent[seq] = fingerprint
            return Verdict.NEW
        return Verdict.DUPLICATE if seen == fingerprint else Verdict.REPLAY

    def check_run(
        self, device_id: str, seqs: list[int], fingerprint: Callable[[int], int]
    ) -> list[Verdict] | None:
        """All-new verdicts for a run of strictly increasing numbers above the device's highest.

        The common case of a buffered upload, settled without a per-reading look-up; returns
        None when the run is anything else (the caller then checks reading by reading).
        ``fingerprint(i)`` gives the content fingerprint of the run's ``i``-th reading.
        """
        n = len(seqs)
        high = self._high.get(device_id)
        if high is None or n < 2 or seqs[0] <= high:
            return None
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            return None
        recent = self._recent[device_id]
        top = seqs[-1]
        for i in range(max(0, n - self.window), n):
            recent[seqs[i]] = fingerprint(i)
        self._high[device_id] = top
        if len(recent) > 2 * self.window:
            for old in [s for s in recent if s <= top - self.window]:
                del recent[old]
        return [Verdict.NEW] * n

    def forget(self, device_id: str, seqs: list[int]) -> None:
        """Un-see ``seqs`` (their readings could not be published), so a retry is accepted."""
        recent = self._recent.get(device_id)
        if recent is None:
            return
        for seq in seqs:
            recent.pop(seq, None)
        if seqs and self._high.get(device_id) in seqs:
            self._high[device_id] = max(recent) if recent else min(seqs) - 1

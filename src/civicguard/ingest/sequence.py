"""Per-device sequence numbers: store retransmissions once, refuse replays (ADR 0003).

A device numbers its messages. A number above the highest seen is new. A number the guard
remembers is a retransmission when its content is the same (counted as a duplicate, stored
once, silent) and a replay when its content differs (refused, alerted downstream). A number it
does not remember is a late arrival inside the window behind the highest (accepted) and a replay
below it, even with content once stored: an old message sent again is captured traffic.

The guard remembers, per device, the fingerprints of the window behind the highest number and
of the device's last body, whole up to ``span`` (the catalog's batch limit), so that a client
retrying a body after a time-out is answered with duplicates however large the body. A
fingerprint is a keyed BLAKE2b digest of the raw reading (8 bytes), stored with the reading; a
device the guard meets for the first time since it started is recalled from the store (its
highest number, the window and the last body), so a restart changes no verdict.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from enum import IntEnum

import numpy as np
import orjson

from civicguard.ingest.model import IntArray, ReadingBatch

#: The key store's name of the fingerprint key (never rotated: stored fingerprints need it).
FINGERPRINT_KEY = "sequence/fingerprints"

#: A device's stored readings, highest number first, as (seq, fingerprint or None for one
#: stored before fingerprints existed, received_at): at least the window behind the highest
#: and every reading received with the highest (its body), at most ``limit`` rows; empty when
#: nothing of the device is stored. Called as ``recall(device_id, window, limit)``.
Recall = Callable[[str, int, int], list[tuple[int, int | None, float]]]

#: Below every sequence number: a device not seen yet.
_NEVER = -(1 << 64)


class Verdict(IntEnum):
    """What a sequence number means for one device."""

    NEW = 0
    DUPLICATE = 1
    REPLAY = 2


class Fingerprinter:
    """Keyed digests of readings' raw content: equal for a retransmission, not for a change.

    Keyed (BLAKE2b with a secret key from the key store) so that a stored fingerprint cannot be
    used to test guesses of what a reading held, a plate for instance, without the key.
    """

    def __init__(self, key: bytes) -> None:
        self._base = hashlib.blake2b(key=key[:64], digest_size=8)

    def of(self, batch: ReadingBatch) -> IntArray:
        """One signed 64-bit fingerprint per reading of ``batch`` (time, values, text)."""
        n = len(batch)
        if not n:
            return np.zeros(0, dtype=np.int64)
        numeric = np.ascontiguousarray(np.column_stack((batch.ts, batch.values)), dtype="<f8")
        width = numeric.shape[1] * 8
        raw = numeric.tobytes()
        copy = self._base.copy
        digests: list[bytes] = []
        add = digests.append
        if batch.text:
            dumps = orjson.dumps
            for i, row in enumerate(zip(*batch.text.values(), strict=True)):
                h = copy()
                h.update(raw[i * width : (i + 1) * width] + dumps(row))
                add(h.digest())
        else:
            for start in range(0, n * width, width):
                h = copy()
                h.update(raw[start : start + width])
                add(h.digest())
        return np.frombuffer(b"".join(digests), dtype="<i8").astype(np.int64)


#: Single readings gathered in plain lists before they join the window's arrays in one step.
_TAIL = 8


def _ints(values: list[int]) -> IntArray:
    return np.array(values, dtype=np.int64)


class _Memory:
    """One device's highest number, its window's fingerprints and its last body's.

    The window's are sorted arrays plus a short tail of single readings not yet folded in
    (all above the arrays); entries below the window are dropped when the tail is folded, so a
    look-up checks the window first. ``body_*`` hold the last body's readings.
    """

    __slots__ = (
        "body_prints",
        "body_seqs",
        "high",
        "tail_prints",
        "tail_seqs",
        "win_prints",
        "win_seqs",
    )

    def __init__(self, high: int) -> None:
        self.high = high
        self.win_seqs: IntArray = _ints([])
        self.win_prints: IntArray = _ints([])
        self.tail_seqs: list[int] = []
        self.tail_prints: list[int] = []
        self.body_seqs: IntArray | None = None
        self.body_prints: IntArray | None = None

    def window(self) -> dict[int, int]:
        """The window's fingerprints by number (with stale entries below it, if any)."""
        recent = dict(zip(self.win_seqs.tolist(), self.win_prints.tolist(), strict=True))
        recent.update(zip(self.tail_seqs, self.tail_prints, strict=True))
        return recent

    def body(self) -> dict[int, int]:
        """The last body's fingerprints by number."""
        if self.body_seqs is None or self.body_prints is None:
            return {}
        return dict(zip(self.body_seqs.tolist(), self.body_prints.tolist(), strict=True))

    def set_window(self, seqs: IntArray, prints: IntArray, floor: int) -> None:
        """Keep ``seqs`` above ``floor`` (sorted) as the window; the tail is folded in them."""
        keep = seqs > floor
        self.win_seqs, self.win_prints = seqs[keep], prints[keep]
        self.tail_seqs, self.tail_prints = [], []


class SequenceGuard:
    """Tracks each device's highest sequence number and the fingerprints it must remember.

    ``window``: numbers below the highest minus this are never accepted for the first time.
    ``span``: the most readings of one body remembered (the catalog's batch limit).
    ``recall``: a device's stored readings (see :data:`Recall`), for a device not yet seen.
    ``key``: the fingerprint key (the key store's ``FINGERPRINT_KEY``); without one, a random
    key good for this process only.

    >>> guard = SequenceGuard(window=4)
    >>> [guard.check("d", s, 1) for s in (1, 2, 2, 5)]
    [<Verdict.NEW: 0>, <Verdict.NEW: 0>, <Verdict.DUPLICATE: 1>, <Verdict.NEW: 0>]
    >>> guard.check("d", 1, 1)
    <Verdict.REPLAY: 2>
    """

    def __init__(
        self,
        window: int = 32,
        *,
        span: int = 5000,
        recall: Recall | None = None,
        key: bytes | None = None,
    ) -> None:
        self.window = window
        self.span = max(span, 1)
        self.fingerprinter = Fingerprinter(key or secrets.token_bytes(32))
        self._recall = recall
        self._devices: dict[str, _Memory] = {}

    def check(self, device_id: str, seq: int, fingerprint: int) -> Verdict:
        """Classify one reading's ``seq`` from ``device_id``; ``fingerprint`` is its content's."""
        seqs = np.array([seq], dtype=np.int64)
        return self.judge(device_id, seqs, np.array([fingerprint], dtype=np.int64))[0]

    def judge(self, device_id: str, seqs: IntArray, prints: IntArray) -> list[Verdict]:
        """Classify one body's readings from ``device_id``, in order, and remember them.

        The common case, numbers rising above the device's highest, is settled without a
        look-up per reading; anything else goes reading by reading.
        """
        n = len(seqs)
        if not n:
            return []
        memory = self._memory(device_id)
        first = int(seqs[0])
        if n == 1 and first > memory.high:
            memory.tail_seqs.append(first)
            memory.tail_prints.append(int(prints[0]))
            memory.high = first
            memory.body_seqs, memory.body_prints = seqs, prints
            if len(memory.tail_seqs) >= _TAIL:
                self._fold(memory)
            return [Verdict.NEW]
        if first > memory.high and bool(np.all(np.diff(seqs) > 0)):
            top = int(seqs[-1])
            self._fold(memory)
            tail = max(0, n - self.window)
            memory.set_window(
                np.concatenate((memory.win_seqs, seqs[tail:])),
                np.concatenate((memory.win_prints, prints[tail:])),
                top - self.window,
            )
            memory.high = top
            memory.body_seqs, memory.body_prints = seqs[-self.span :], prints[-self.span :]
            return [Verdict.NEW] * n
        return self._judge_each(memory, seqs.tolist(), prints.tolist())

    def forget(self, device_id: str, seqs: list[int]) -> None:
        """Un-see ``seqs`` (their readings could not be published), so a retry is accepted."""
        memory = self._devices.get(device_id)
        if memory is None or not seqs:
            return
        self._fold(memory)
        gone = _ints(seqs)
        keep = ~np.isin(memory.win_seqs, gone)
        memory.win_seqs, memory.win_prints = memory.win_seqs[keep], memory.win_prints[keep]
        if memory.body_seqs is not None and memory.body_prints is not None:
            keep = ~np.isin(memory.body_seqs, gone)
            memory.body_seqs, memory.body_prints = memory.body_seqs[keep], memory.body_prints[keep]
        if memory.high in seqs:
            memory.high = int(memory.win_seqs[-1]) if len(memory.win_seqs) else min(seqs) - 1

    def remembered(self, device_id: str) -> int:
        """How many fingerprints the guard holds in memory for ``device_id``."""
        memory = self._devices.get(device_id)
        if memory is None:
            return 0
        body = 0 if memory.body_seqs is None else len(memory.body_seqs)
        return len(memory.win_seqs) + len(memory.tail_seqs) + body

    def _memory(self, device_id: str) -> _Memory:
        memory = self._devices.get(device_id)
        if memory is None:
            memory = self._devices[device_id] = self._recalled(device_id)
        return memory

    def _recalled(self, device_id: str) -> _Memory:
        """A device's memory from the store: what the guard had when the process stopped."""
        rows = self._recall(device_id, self.window, self.span + self.window) if self._recall else []
        if not rows:
            return _Memory(_NEVER)
        high, _, stamp = max(rows)
        memory = _Memory(high)
        floor = high - self.window
        # A reading stored before fingerprints existed has none: its content is unknown, so
        # only the window judges it (a resend inside it is accepted and stored once).
        window = sorted((s, p) for s, p, _ in rows if p is not None and s > floor)
        memory.set_window(_ints([s for s, _ in window]), _ints([p for _, p in window]), floor)
        body = sorted((s, p) for s, p, at in rows if p is not None and at == stamp)
        if body:
            memory.body_seqs = _ints([s for s, _ in body[-self.span :]])
            memory.body_prints = _ints([p for _, p in body[-self.span :]])
        return memory

    def _fold(self, memory: _Memory) -> None:
        """Move the gathered single readings into the window's arrays."""
        if memory.tail_seqs:
            memory.set_window(
                np.concatenate((memory.win_seqs, _ints(memory.tail_seqs))),
                np.concatenate((memory.win_prints, _ints(memory.tail_prints))),
                memory.high - self.window,
            )

    def _judge_each(self, memory: _Memory, seqs: list[int], prints: list[int]) -> list[Verdict]:
        recent, body = memory.window(), memory.body()
        high = memory.high
        window = self.window
        this: dict[int, int] = {}  # this body's readings so far, new or retransmitted
        fresh = False
        verdicts: list[Verdict] = []
        for seq, fingerprint in zip(seqs, prints, strict=True):
            if seq > high:
                verdict = Verdict.NEW
                high = seq
            else:
                inside = seq > high - window
                was = this.get(seq)
                if was is None and inside:
                    was = recent.get(seq)
                if was is None:
                    was = body.get(seq)
                if was is not None:
                    verdict = Verdict.DUPLICATE if was == fingerprint else Verdict.REPLAY
                else:
                    verdict = Verdict.NEW if inside else Verdict.REPLAY
            if verdict is Verdict.NEW:
                recent[seq] = fingerprint
                fresh = True
            if verdict is not Verdict.REPLAY:
                this[seq] = fingerprint
            verdicts.append(verdict)
        memory.high = high
        # A body with nothing new (a retry, a replay) leaves the last body as it was.
        if fresh:
            kept = sorted(this.items())[-self.span :]
            memory.body_seqs = _ints([s for s, _ in kept])
            memory.body_prints = _ints([p for _, p in kept])
        kept = sorted(recent.items())
        memory.set_window(_ints([s for s, _ in kept]), _ints([p for _, p in kept]), high - window)
        return verdicts

"""Per-device sequence numbers: store duplicates once, refuse replays (ADR 0003).

A device numbers its messages. A number above the highest seen is new. A number the device
already used is a retransmission when its content is the same (counted as a duplicate, stored
once, silent) and a replay when its content differs (refused, alerted downstream). A number
never used but below the window behind the highest is a replay too; inside the window it is a
late arrival and accepted.

What a number's content was is known by its fingerprint: a keyed BLAKE2b digest of the raw
reading (8 bytes), stored with the reading. The guard remembers in memory the fingerprints of
the window behind each device's highest number and of the device's last body, however large
(up to ``span``, the catalog's batch limit), so that a retry is judged without the store even
before its original is stored; anything older, and everything after a restart, is judged
against the fingerprints in the store.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from enum import IntEnum

import numpy as np
import orjson

from civicguard.ingest.model import IntArray, ReadingBatch

#: The key store's name of the fingerprint key (never rotated: stored fingerprints need it).
FINGERPRINT_KEY = "sequence/fingerprints"

#: Looks up stored readings of one device: seq -> fingerprint (None: stored without one).
StoredPrints = Callable[[str, Sequence[int]], dict[int, int | None]]

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


#: Single readings gathered in plain lists before they join a device's arrays in one step.
_TAIL = 8


class _Memory:
    """One device's highest number and the fingerprints the guard remembers, sorted by seq.

    ``tail_*`` hold rising single readings not yet folded into the arrays (all above them):
    a device sending one reading per message costs list appends, not array copies.
    """

    __slots__ = ("high", "prints", "seqs", "tail_prints", "tail_seqs")

    def __init__(self, high: int) -> None:
        self.high = high
        self.seqs: IntArray = np.zeros(0, dtype=np.int64)
        self.prints: IntArray = np.zeros(0, dtype=np.int64)
        self.tail_seqs: list[int] = []
        self.tail_prints: list[int] = []


class SequenceGuard:
    """Tracks each device's highest sequence number and the fingerprints behind it.

    ``window``: numbers below the highest minus this are never accepted for the first time.
    ``span``: the most readings of one body remembered (the catalog's batch limit).
    ``resume``: a device's highest stored number, for a device the guard has not seen.
    ``stored``: fingerprints of stored readings, for numbers the guard does not remember.
    ``key``: the fingerprint key (the key store's ``FINGERPRINT_KEY``); without one, a random
    key good for this process only, so that nothing it fingerprints can be judged after it.

    >>> guard = SequenceGuard(window=4)
    >>> [guard.check("d", s, 1) for s in (1, 2, 2, 5)]
    [<Verdict.NEW: 0>, <Verdict.NEW: 0>, <Verdict.DUPLICATE: 1>, <Verdict.NEW: 0>]
    >>> guard.check("d", 1, 1)
    <Verdict.REPLAY: 2>
    """

    def __init__(
        self,
        window: int = 32,
        resume: Callable[[str], int | None] | None = None,
        *,
        span: int = 5000,
        stored: StoredPrints | None = None,
        key: bytes | None = None,
    ) -> None:
        self.window = window
        self.fingerprinter = Fingerprinter(key or secrets.token_bytes(32))
        self.span = max(span, 1)
        self._resume = resume
        self._stored = stored
        self._devices: dict[str, _Memory] = {}

    def check(self, device_id: str, seq: int, fingerprint: int) -> Verdict:
        """Classify one reading's ``seq`` from ``device_id``; ``fingerprint`` is its content's."""
        seqs = np.array([seq], dtype=np.int64)
        return self.judge(device_id, seqs, np.array([fingerprint], dtype=np.int64))[0]

    def judge(self, device_id: str, seqs: IntArray, prints: IntArray) -> list[Verdict]:
        """Classify one body's readings from ``device_id``, in order, and remember them.

        The common case, numbers rising above the device's highest, is settled with whole
        arrays; anything else goes reading by reading, asking the store at most once.
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
            if len(memory.tail_seqs) >= _TAIL:
                self._fold(memory)
            return [Verdict.NEW]
        self._fold(memory)
        if first > memory.high and bool(np.all(np.diff(seqs) > 0)):
            self._remember_run(memory, seqs, prints)
            return [Verdict.NEW] * n
        return self._judge_each(device_id, memory, seqs.tolist(), prints.tolist())

    def forget(self, device_id: str, seqs: list[int]) -> None:
        """Un-see ``seqs`` (their readings could not be published), so a retry is accepted."""
        memory = self._devices.get(device_id)
        if memory is None or not seqs:
            return
        self._fold(memory)
        keep = ~np.isin(memory.seqs, np.array(seqs, dtype=np.int64))
        memory.seqs, memory.prints = memory.seqs[keep], memory.prints[keep]
        if memory.high in seqs:
            memory.high = int(memory.seqs[-1]) if len(memory.seqs) else min(seqs) - 1

    def remembered(self, device_id: str) -> int:
        """How many fingerprints the guard holds in memory for ``device_id``."""
        memory = self._devices.get(device_id)
        return 0 if memory is None else len(memory.seqs) + len(memory.tail_seqs)

    def _memory(self, device_id: str) -> _Memory:
        memory = self._devices.get(device_id)
        if memory is None:
            high = self._resume(device_id) if self._resume else None
            memory = self._devices[device_id] = _Memory(_NEVER if high is None else high)
        return memory

    def _fold(self, memory: _Memory) -> None:
        """Move the gathered single readings into the arrays, as one rising run."""
        if memory.tail_seqs:
            seqs = np.array(memory.tail_seqs, dtype=np.int64)
            prints = np.array(memory.tail_prints, dtype=np.int64)
            memory.tail_seqs, memory.tail_prints = [], []
            self._remember_run(memory, seqs, prints)

    def _remember_run(self, memory: _Memory, seqs: IntArray, prints: IntArray) -> None:
        """Remember a rising run above the highest: its last ``span`` and the window before."""
        top = int(seqs[-1])
        if len(seqs) > self.span:
            seqs, prints = seqs[-self.span :], prints[-self.span :]
        cut = int(np.searchsorted(memory.seqs, top - self.window, side="right"))
        if cut < len(memory.seqs):
            memory.seqs = np.concatenate((memory.seqs[cut:], seqs))
            memory.prints = np.concatenate((memory.prints[cut:], prints))
        else:
            memory.seqs = np.array(seqs, dtype=np.int64)
            memory.prints = np.array(prints, dtype=np.int64)
        memory.high = top

    def _judge_each(
        self, device_id: str, memory: _Memory, seqs: list[int], prints: list[int]
    ) -> list[Verdict]:
        known: dict[int, int | None] = dict(
            zip(memory.seqs.tolist(), memory.prints.tolist(), strict=True)
        )
        unknown = sorted({s for s in seqs if s <= memory.high and s not in known})
        if unknown and self._stored is not None:
            # None: stored before fingerprints were, so its content is unknown (ADR 0003).
            known.update(self._stored(device_id, unknown))
        high = memory.high
        verdicts: list[Verdict] = []
        for seq, fingerprint in zip(seqs, prints, strict=True):
            if seq > high:
                verdict = Verdict.NEW
                high = seq
            elif seq in known:
                was = known[seq]
                if was is None:
                    inside = seq > high - self.window
                    verdict = Verdict.DUPLICATE if inside else Verdict.REPLAY
                else:
                    verdict = Verdict.DUPLICATE if was == fingerprint else Verdict.REPLAY
            elif seq > high - self.window:
                verdict = Verdict.NEW  # a late arrival inside the window
            else:
                verdict = Verdict.REPLAY
            if verdict is Verdict.NEW:
                known[seq] = fingerprint
            verdicts.append(verdict)
        self._keep(memory, known, high, set(seqs))
        return verdicts

    def _keep(
        self, memory: _Memory, known: dict[int, int | None], high: int, body: set[int]
    ) -> None:
        """Keep the window behind ``high`` and this body (at most ``span`` of it)."""
        floor = high - self.window
        prints = {s: p for s, p in known.items() if p is not None and (s > floor or s in body)}
        kept = sorted(prints)[-(self.span + self.window) :]
        memory.seqs = np.array(kept, dtype=np.int64)
        memory.prints = np.array([prints[s] for s in kept], dtype=np.int64)
        memory.high = high

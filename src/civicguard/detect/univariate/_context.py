"""Contextual novelty: has this stream ever been in the situation it is in now?

Written from the published description of the Contextual Anomaly Detector (CAD OSE, NAB's
third-best detector): readings are cut into a few levels, the recent levels form contexts,
the detector remembers what followed each context and scores how many of the current
contexts failed to predict the reading. A noisy stream keeps doing things it has done
before; a stream that breaks its habits (a new level, a new rhythm, a new shape) does not.
The range is learned online (CAD OSE is handed the whole file's range, which would peek).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector

#: Odd 64-bit multiplier (the golden ratio) that spreads context hashes over the table.
_MIX = np.uint64(0x9E3779B97F4A7C15)


class ContextNovelty(UnivariateDetector):
    """Share of the contexts of a reading whose expectation it breaks (or that are new).

    A reading's level is its place between the stream's running minimum and maximum, cut
    into ``levels`` equal parts (at most 8). Its contexts are the last 1, 2, ..., ``depth``
    levels before it; each is hashed into a per-stream table of ``2 ** table_bits`` entries,
    and an entry is the bit mask of the levels that have followed that context so far. The
    score is the share of the contexts whose mask lacks this reading's level, counting a
    never-seen context as ``novelty_weight`` of a broken one: 0 for a habitual step, 1
    when no context the stream knows predicted it.

    >>> detector = ContextNovelty()
    >>> ts = np.arange(401.0)
    >>> rhythm = np.r_[np.tile([0.0, 1.0, 2.0, 3.0], 100), 0.0]
    >>> scores = detector.update(np.zeros(401, dtype=np.intp), rhythm, ts)
    >>> float(scores[-1]), float(scores[-4])
    (0.0, 0.0)
    >>> broken = detector.update(np.array([0]), np.array([3.0]), np.array([401.0]))
    >>> bool(broken[0] > 0.5)
    True
    """

    name = "context"
    low: FloatArray
    high: FloatArray
    count: FloatArray
    history: FloatArray
    seen: npt.NDArray[np.uint8]

    def __init__(
        self, levels: int = 8, depth: int = 7, table_bits: int = 18, novelty_weight: float = 0.5
    ) -> None:
        if not 1 <= levels <= 8:
            msg = "a context's followers are kept as an 8-bit mask: 1 to 8 levels"
            raise ValueError(msg)
        super().__init__(
            (
                ("low", (), np.inf),
                ("high", (), -np.inf),
                ("count", (), 0.0),
                ("history", (depth,), -1.0),
                ("seen", (1 << table_bits,), 0.0),
            ),
            compact=frozenset({"seen"}),
        )
        self.levels = levels
        self.depth = depth
        self.table_bits = table_bits
        self.novelty_weight = novelty_weight

    def to_score(self, surprise: FloatArray) -> FloatArray:
        """The novelty is already a score in [0, 1]."""
        return surprise

    def level(self, slots: IndexArray, values: FloatArray) -> FloatArray:
        """Learn the running range of these slots and place ``values`` in it (0 .. levels - 1)."""
        low = np.minimum(self.low[slots], values)
        high = np.maximum(self.high[slots], values)
        self.low[slots] = low
        self.high[slots] = high
        span = high - low
        share = np.divide(values - low, span, out=np.zeros_like(values), where=span > 0)
        result: FloatArray = np.minimum(np.floor(share * self.levels), self.levels - 1)
        return result

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``: the share of broken expectations."""
        level = self.level(slots, values)
        past = self.history[slots]
        self.history[slots] = np.concatenate([level[:, None], past[:, :-1]], axis=1)
        codes = (past + 1.0).astype(np.uint64)
        index = np.empty(past.shape, dtype=np.intp)
        h = np.zeros(slots.size, dtype=np.uint64)
        for k in range(self.depth):
            # Mixing the length in keeps "A" and "A then nothing" apart.
            h = (h ^ (codes[:, k] + np.uint64(k * self.levels))) * _MIX
            index[:, k] = (h >> np.uint64(64 - self.table_bits)).astype(np.intp)
        rows = slots[:, None]
        # Each table entry is a bit mask of the levels that followed that context.
        mask = self.seen[rows, index].astype(np.intp)
        bit = (1 << level.astype(np.intp))[:, None]
        valid = past >= 0
        known = valid & (mask != 0)
        broken = known & ((mask & bit) == 0)
        novel = valid & (mask == 0)
        self.seen[rows, index] = np.where(valid, mask | bit, mask).astype(np.uint8)
        self.count[slots] += 1.0
        width = np.maximum(valid.sum(axis=1), 1)
        result: FloatArray = (broken.sum(axis=1) + self.novelty_weight * novel.sum(axis=1)) / width
        return result

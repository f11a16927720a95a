"""The contract of single-stream anomaly detectors: per-slot state in arrays, batches of points.

A batch may hold several points of one stream; they are taken in batch order, one vector step
per rank (first point of every stream, then the second...), so a batch scores exactly as the
same points fed one at a time. Every score uses only the points up to and including its own.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from civicguard.detect._support import rank_in_group

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

#: Scale of the surprise-to-score curve: a surprise of this many sigmas scores tanh(1) = 0.76.
SURPRISE_SCALE = 10.0


def surprise_score(surprise: FloatArray) -> FloatArray:
    """A surprise in sigma units (0 = ordinary) as an anomaly score in [0, 1).

    >>> surprise_score(np.array([-1.0, 0.0, 10.0])).round(2).tolist()
    [0.0, 0.0, 0.76]
    """
    return np.tanh(np.maximum(surprise, 0.0) / SURPRISE_SCALE)


def grow_rows(array: npt.NDArray[np.generic], size: int, fill: float) -> npt.NDArray[np.generic]:
    """``array`` with at least ``size`` rows, new rows set to ``fill``."""
    if array.shape[0] >= size:
        return array
    extra = max(size - array.shape[0], array.shape[0], 16)
    pad = np.full((extra, *array.shape[1:]), fill, dtype=array.dtype)
    return np.concatenate([array, pad])


class SlotState:
    """Per-slot arrays, named with their trailing shape and initial value, grown on demand.

    Arrays are float64 unless ``compact`` names some of them: those are uint8 (flags), for
    tables too large to keep as floats.
    """

    def __init__(
        self,
        state: tuple[tuple[str, tuple[int, ...], float], ...],
        compact: frozenset[str] = frozenset(),
    ) -> None:
        self._state = state
        self._capacity = 0
        self._parts: list[SlotState] = []
        for attribute, shape, fill in state:
            dtype = np.uint8 if attribute in compact else np.float64
            setattr(self, attribute, np.full((0, *shape), fill, dtype=dtype))

    def part(self, child: SlotStateT) -> SlotStateT:
        """Adopt ``child`` so that it grows with this one; returns it."""
        self._parts.append(child)
        return child

    def reserve(self, size: int) -> None:
        """Make room for slots ``0 .. size - 1``."""
        for child in self._parts:
            child.reserve(size)
        if size <= self._capacity:
            return
        self._capacity = max(size, 2 * self._capacity, 16)
        for attribute, _, fill in self._state:
            setattr(self, attribute, grow_rows(getattr(self, attribute), self._capacity, fill))


SlotStateT = TypeVar("SlotStateT", bound=SlotState)


class UnivariateDetector(SlotState):
    """Base class: splits a batch into steps of distinct streams and scores them.

    Subclasses list their per-slot arrays (attribute name, trailing shape, initial value)
    and implement ``surprise``: score and learn one point for each of some distinct slots,
    returning how surprising each point was in sigma units.
    """

    #: Short name, used for result folders and in the ensemble.
    name: str = "univariate"

    def update(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn each point; scores in [0, 1], aligned with the inputs.

        ``slots`` are stream numbers (small non-negative integers), ``values`` the readings,
        ``ts`` their Unix seconds. Points of one stream must come in time order.
        """
        slots = np.asarray(slots, dtype=np.intp)
        values = np.asarray(values, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        scores = np.zeros(values.shape[0], dtype=np.float64)
        for at in self.steps(slots):
            scores[at] = self.to_score(self.surprise(slots[at], values[at], ts[at]))
        return scores

    def steps(self, slots: IndexArray) -> list[IndexArray | slice]:
        """Positions of ``slots`` in vector steps of distinct slots, in order; reserves them.

        The first step holds each slot's first point, the second its second, and so on.
        """
        if slots.size == 0:
            return []
        self.reserve(int(slots.max()) + 1)
        if np.unique(slots).size == slots.size:
            return [slice(None)]
        order = np.argsort(slots, kind="stable")
        rank = np.empty_like(order)
        rank[order] = rank_in_group(slots[order])
        by_rank = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_rank], np.arange(1, int(rank.max()) + 1))
        return list(np.split(by_rank, bounds))

    def to_score(self, surprise: FloatArray) -> FloatArray:
        """This detector's surprise as an anomaly score in [0, 1]."""
        return surprise_score(surprise)

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots`` (distinct, reserved); sigma units."""
        raise NotImplementedError

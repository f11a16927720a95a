"""Window neighbours: how far the stream's recent shape lies from every shape it has shown.

Written from the published descriptions of KNN-CAD and ARTime: the last ``length`` readings
form a point in ``length`` dimensions, the stream keeps a bounded memory of its past points,
and the distance to the ``k``-th nearest of them says whether the stream has been here
before. A noisy or seasonal stream keeps revisiting its own shapes; a new level, a new
rhythm or a new kind of burst lands far from all of them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector

#: Candidates beyond ``k`` whose distances are taken exactly, so that rounding in the
#: cheap first pass cannot swap a near neighbour for a farther one.
CANDIDATES = 8


def _rows(slots: IndexArray) -> IndexArray | slice:
    """``slots`` as a slice when they are consecutive, so memories are viewed, not copied.

    The NAB run and most live batches advance a prefix of the slots, and copying every
    stream's memory at every step would cost more than the distances themselves.
    """
    first = int(slots[0])
    if slots.size == int(slots[-1]) - first + 1 and np.all(np.diff(slots) == 1):
        return slice(first, first + slots.size)
    return slots


class WindowNeighbours(UnivariateDetector):
    """How rare the distance from the recent window to its ``k``-th nearest past window is.

    The window is ``length`` moving averages of ``step`` readings each, ``step`` apart, so
    ``step`` > 1 sees slower shapes over a longer span. Windows enter the memory (a ring of
    the last ``memory`` ones) ``gap`` points late, so a window is never compared with the
    windows that overlap it. Distances are in the stream's own units, never normalised, so
    an early change of range cannot inflate them; the surprise is how rare the (log)
    distance is among the stream's last ``calibration`` distances, as in KNN-CAD's
    conformal score, on a sigma-like scale. Distances under ``resolution`` of the range
    seen so far count as that much, so that a flat stream's first ripple is not news.

    >>> detector = WindowNeighbours(memory=200)
    >>> ts = np.arange(600.0)
    >>> rhythm = np.tile([0.0, 1.0, 4.0, 1.0], 150) + 0.01 * np.sin(ts)
    >>> scores = detector.update(np.zeros(600, dtype=np.intp), rhythm, ts)
    >>> broken = detector.update(np.array([0]), np.array([4.0]), np.array([600.0]))
    >>> bool(broken[0] > scores[300:].max())
    True
    """

    name = "window_neighbours"
    history: FloatArray
    raw: FloatArray
    memory_windows: FloatArray
    memory_norms: FloatArray
    count: FloatArray
    past: FloatArray
    seen: FloatArray
    low: FloatArray
    high: FloatArray

    def __init__(
        self,
        length: int = 12,
        step: int = 1,
        memory: int = 1000,
        k: int = 3,
        gap: int | None = None,
        warmup: int = 100,
        resolution: float = 0.03,
        calibration: int = 1000,
    ) -> None:
        if length < 1 or step < 1 or memory < k or k < 1:
            msg = "window neighbours need a window, a step and a memory of at least k windows"
            raise ValueError(msg)
        self.length = length
        self.step = step
        self.memory = memory
        self.k = k
        self.span = (length - 1) * step + 1
        self.gap = self.span if gap is None else gap
        self.warmup = warmup
        self.resolution = resolution
        self.calibration = calibration
        super().__init__(
            (
                ("history", (self.span + self.gap,), 0.0),
                ("raw", (step,), 0.0),
                ("memory_windows", (memory, length), 0.0),
                ("memory_norms", (memory,), np.inf),
                ("count", (), 0.0),
                ("past", (calibration,), -np.inf),
                ("seen", (), 0.0),
                ("low", (), np.inf),
                ("high", (), -np.inf),
            )
        )
        # Offsets (from the newest) of the averages that make up a window.
        self._taps = np.arange(self.gap, self.span + self.gap, step)

    def smoothed(self, slots: IndexArray, values: FloatArray, count: FloatArray) -> FloatArray:
        """Learn ``values`` and return the mean of each slot's last ``step`` readings."""
        if self.step == 1:
            return values
        column = (count % self.step).astype(np.intp)
        self.raw[slots, column] = values
        result: FloatArray = self.raw[slots].sum(axis=1) / np.minimum(count + 1.0, self.step)
        return result

    def distance(self, rows: IndexArray | slice, window: FloatArray) -> FloatArray:
        """Euclidean distance from each window to the ``k``-th nearest in its memory."""
        memory = self.memory_windows[rows]
        # |m - w|^2 = |m|^2 - 2 m.w + |w|^2 picks a few candidates cheaply (unfilled memory
        # has an infinite norm); their distances are then taken exactly, element by element,
        # so a stream scores the same to the last bit in any batch, whatever the rounding
        # of the matrix product.
        dots = np.matmul(memory, window[:, :, None])[:, :, 0]
        approximate = self.memory_norms[rows] - 2.0 * dots
        take = min(self.k + CANDIDATES, self.memory)
        nearest = np.argpartition(approximate, take - 1, axis=1)[:, :take]
        chosen = np.take_along_axis(memory, nearest[:, :, None], axis=1)
        filled = np.isfinite(np.take_along_axis(self.memory_norms[rows], nearest, axis=1))
        exact = np.sqrt(((chosen - window[:, None, :]) ** 2).sum(axis=2))
        exact = np.where(filled, exact, np.inf)
        result: FloatArray = np.partition(exact, self.k - 1, axis=1)[:, self.k - 1]
        return result

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots``."""
        rows = _rows(slots)
        # A copy: with a slice, indexing gives a view that the update below would change.
        count = self.count[rows].copy()
        self.count[rows] = count + 1.0
        average = self.smoothed(slots, values, count)
        history = np.concatenate([self.history[rows][:, 1:], average[:, None]], axis=1)
        self.history[rows] = history
        window = history[:, self._taps]
        stored = count - (self.span + self.gap - 1)
        ready = stored >= max(self.k, self.warmup)
        d = self.distance(rows, window) if np.any(ready) else np.zeros(slots.size)
        # Differences under ``resolution`` of the range seen so far are noise, not shapes.
        low = np.minimum(self.low[rows], values)
        high = np.maximum(self.high[rows], values)
        self.low[rows] = low
        self.high[rows] = high
        floor = self.resolution * np.sqrt(self.length) * (high - low) + 1e-9
        # A log distance: a repeating stream's distances span decades.
        spread = np.log(d + floor)
        surprise = np.where(ready, self.rank(slots, spread, ready), 0.0)
        # The window that no longer overlaps the newest one joins the memory.
        joins = np.flatnonzero(stored >= 0)
        if joins.size:
            old = history[joins][:, : self.span : self.step]
            at = (stored[joins] % self.memory).astype(np.intp)
            self.memory_windows[slots[joins], at] = old
            self.memory_norms[slots[joins], at] = np.einsum("ij,ij->i", old, old)
        return surprise

    def rank(
        self, slots: IndexArray, spread: FloatArray, ready: npt.NDArray[np.bool_]
    ) -> FloatArray:
        """Learn the ready log distances; how rare each is among its stream's recent ones.

        The tail share (distances at least as large, plus one, over the count plus one) is
        put on a sigma-like scale, sqrt(2 ln(1 / tail)): 1 in 1000 is about 3.7 sigmas.
        """
        rows = _rows(slots)
        past = self.past[rows]
        seen = self.seen[rows].copy()
        size = np.minimum(seen, self.calibration)
        # Unwritten entries are -inf, never at least as large as a distance.
        beyond = (past >= spread[:, None]).sum(axis=1)
        tail = (beyond + 1.0) / (size + 1.0)
        at = (seen % self.calibration).astype(np.intp)
        fresh = np.flatnonzero(ready)
        self.past[slots[fresh], at[fresh]] = spread[fresh]
        self.seen[slots[fresh]] = seen[fresh] + 1.0
        result: FloatArray = np.where(size >= self.warmup, np.sqrt(2.0 * np.log(1.0 / tail)), 0.0)
        return result

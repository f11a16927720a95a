"""Fuzzy ART categories of many slots in one pool of rows, each slot on a page of its size.

A page of size class ``k`` is ``FIRST_ROOM * 2**k`` consecutive rows of the pool, one row
per category. A slot's first category gives it a page of class 0; a slot that outgrows its
page moves (copies its categories) to a page of the next class, and the page it leaves is
reused by the next slot that needs one of that class. Once a quarter of the rows are free,
the pool is compacted. So a slot costs rows for its own categories (less than twice as many,
``FIRST_ROOM`` at least), whatever the busiest slot holds, and a slot that gives up its
categories gives its rows back. Matching stays one gather of every slot's rows at once.
"""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, SlotState

#: Categories a slot's first page has room for.
FIRST_ROOM = 16
#: Per-category arrays of the pool, moved together.
COLUMNS = ("weights", "total", "edge")


class ArtPages(SlotState):
    """Each category's weights, total weight and edge weight; each slot's page of them.

    A slot's page is its size class (-1 for none) and its first row in the pool. Rows past
    ``end`` are unused; below it, the rows of free pages are listed by class.
    """

    size_class: FloatArray
    start: FloatArray

    def __init__(self, width: int) -> None:
        super().__init__((("size_class", (), -1.0), ("start", (), 0.0)))
        self.width = width
        self.weights: FloatArray = np.zeros((0, width))
        self.total: FloatArray = np.zeros(0)
        self.edge: FloatArray = np.zeros(0)
        self.end = 0
        self.free_pages: list[list[int]] = []
        self.free_rows = 0

    def rows(self, slots: IndexArray, rank: IndexArray) -> IndexArray:
        """The pool's row of category ``rank`` of each of ``slots``."""
        rows: IndexArray = self.start[slots].astype(np.intp) + rank
        return rows

    def gather(self, slots: IndexArray, room: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The weights, totals and edges of categories ``0 .. room - 1`` of each slot.

        Past a slot's own categories they are some other rows' (finite, meaningless).
        """
        rows = self.rows(slots[:, None], np.arange(room))
        return (
            np.take(self.weights, rows, axis=0, mode="clip"),
            np.take(self.total, rows, mode="clip"),
            np.take(self.edge, rows, mode="clip"),
        )

    def held_rows(self, slots: IndexArray, counts: IndexArray) -> tuple[IndexArray, IndexArray]:
        """The rows of the first ``counts`` categories of ``slots``, and each row's slot's
        position in ``slots``."""
        owner = np.repeat(np.arange(slots.size), counts)
        first = np.cumsum(counts) - counts
        return self.rows(slots[owner], np.arange(owner.size) - first[owner]), owner

    def put(
        self, rows: IndexArray, weights: FloatArray, total: FloatArray, edge: FloatArray
    ) -> None:
        """Set the categories at ``rows`` of the pool."""
        self.weights[rows] = weights
        self.total[rows] = total
        self.edge[rows] = edge

    def make_room(self, slots: IndexArray, rank: IndexArray) -> None:
        """Give each of ``slots`` (distinct) room for its category ``rank``, its next one."""
        classes = self.size_class[slots].astype(np.intp)
        fresh = classes < 0
        if fresh.any():
            self.allocate(0, slots[fresh])
        outgrown = ~fresh & (rank >= FIRST_ROOM << np.maximum(classes, 0))
        if outgrown.any():
            for k in np.unique(classes[outgrown]).tolist():
                self.move(slots[outgrown & (classes == k)], k)
            self.compact_when_sparse()

    def move(self, slots: IndexArray, k: int) -> None:
        """Move ``slots`` from their pages of class ``k`` to pages of class ``k + 1``."""
        room = np.arange(FIRST_ROOM << k)
        old_starts = self.start[slots].astype(np.intp)
        old = old_starts[:, None] + room
        self.allocate(k + 1, slots)
        new = self.rows(slots[:, None], room)
        for name in COLUMNS:
            column = getattr(self, name)
            column[new] = column[old]
        self.free(k, old_starts)

    def release(self, slots: IndexArray) -> None:
        """Give up the pages of ``slots``: they hold no category any more."""
        classes = self.size_class[slots].astype(np.intp)
        self.size_class[slots] = -1.0
        for k in np.unique(classes[classes >= 0]).tolist():
            self.free(k, self.start[slots[classes == k]].astype(np.intp))
        self.compact_when_sparse()

    def allocate(self, k: int, slots: IndexArray) -> None:
        """Give ``slots`` pages of class ``k``: free ones first, then new ones at the end."""
        while len(self.free_pages) <= k:
            self.free_pages.append([])
        room = FIRST_ROOM << k
        free = self.free_pages[k]
        reused = min(len(free), slots.size)
        starts = np.array(free[len(free) - reused :], dtype=np.intp)
        del free[len(free) - reused :]
        self.free_rows -= reused * room
        added = self.end + room * np.arange(slots.size - reused)
        self.end += room * added.size
        if self.end > self.weights.shape[0]:
            self.resize(max(self.end, self.weights.shape[0] * 3 // 2))
        self.size_class[slots] = float(k)
        self.start[slots] = np.concatenate((starts, added))

    def free(self, k: int, starts: IndexArray) -> None:
        """List the pages of class ``k`` at ``starts`` as free."""
        self.free_pages[k].extend(starts.tolist())
        self.free_rows += (FIRST_ROOM << k) * starts.size

    def compact_when_sparse(self) -> None:
        """Once a quarter of the rows are free, lay the pages in use end to end from row 0."""
        if 4 * self.free_rows <= self.end:
            return
        slots = np.flatnonzero(self.size_class >= 0)
        rooms = FIRST_ROOM << self.size_class[slots].astype(np.intp)
        old, _ = self.held_rows(slots, rooms)
        for name in COLUMNS:
            setattr(self, name, getattr(self, name)[old])
        self.start[slots] = np.cumsum(rooms) - rooms
        self.end = int(rooms.sum())
        self.free_pages = [[] for _ in self.free_pages]
        self.free_rows = 0

    def resize(self, size: int) -> None:
        """Make the pool ``size`` rows long (no shorter than it is), new rows 0."""
        for name in COLUMNS:
            column = getattr(self, name)
            wider = np.zeros((size, *column.shape[1:]))
            wider[: column.shape[0]] = column
            setattr(self, name, wider)

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool and the per-slot arrays."""
        pool = sum(int(getattr(self, name).nbytes) for name in COLUMNS)
        return pool + int(self.size_class.nbytes + self.start.nbytes)

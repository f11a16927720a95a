"""Dual-vigilance fuzzy ART for many streams at once: each slot's categories in one array.

A category is a hyperbox: its weight is (lower corner, 1 - upper corner). An input's match is
(feature similarity)^3 * (energy similarity)^2, where the feature similarity is the share of
the box's weight the input keeps and the energy similarity the same on the last feature
alone (the newest level). Categories matching at least ``rho_ub`` absorb the input;
otherwise, a best match of at least ``rho_lb`` starts a new category of a known kind and a
weaker one starts a new kind: that is the anomaly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from civicguard.detect.univariate._art_pages import FIRST_ROOM, ArtPages
from civicguard.detect.univariate._base import FloatArray, IndexArray, SlotState

BoolArray = npt.NDArray[np.bool_]

#: Added to both sides of the similarity ratios, so that a box with no weight keeps all.
TINY = 1e-12
#: Categories matched in one go (about two megabytes of weights): larger tables would leave the
#: processor's cache and cost more than the calls saved.
CHUNK = 8192


class ArtBank(SlotState):
    """One fuzzy ART per slot, with fast learning over complement-coded inputs.

    Each slot's categories are the first ``count`` of its page (see
    :mod:`~civicguard.detect.univariate._art_pages`): each category's weights (2 * dim), its
    weight summed over both halves and its weight on the newest feature (both halves).
    Inputs are matched many slots at once, each against its own slot's categories only.
    """

    count: FloatArray
    rho_lb: FloatArray
    rho_ub: FloatArray

    def __init__(self, dim: int, rho: float = 0.0) -> None:
        super().__init__((("count", (), 0.0), ("rho_lb", (), rho), ("rho_ub", (), rho)))
        self.dim = dim
        self.pages = self.part(ArtPages(2 * dim))

    def train(
        self, slots: IndexArray, features: FloatArray, learn: BoolArray
    ) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Match (and learn) one input per slot: best match, its energy similarity, new.

        ``new`` is True where no category matched at least the lower vigilance (always where
        ``learn`` is False, or the slot has no category yet: its match is then 0). A box
        spanning the whole space (no weight) keeps every input. Where several categories
        match best, the first one counts.
        """
        coded = np.concatenate((features, 1.0 - features), axis=1)
        sizes = self.count[slots].astype(np.intp)
        top = np.zeros(slots.size)
        energy = np.zeros(slots.size)
        absorbs = np.zeros(slots.size, dtype=np.bool_)
        for part in chunks(sizes):
            top[part], energy[part], absorbs[part] = self.match(
                slots[part], coded[part], sizes[part], learn[part]
            )
        adds = learn & ~absorbs
        self.add(slots[adds], coded[adds])
        new = ~(learn & (sizes > 0)) | (~absorbs & (top < self.rho_lb[slots]))
        return top, energy, new

    def match(
        self, slots: IndexArray, coded: FloatArray, sizes: IndexArray, learn: BoolArray
    ) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Best match and its energy similarity of each coded input, and whether absorbed.

        Slots with ``sizes`` categories each (at least one); where ``learn``, the categories
        matching at least the upper vigilance absorb the input, if any does.
        """
        room = int(sizes.max())
        kept, total, edge_total = self.pages.gather(slots, room)
        np.minimum(kept, coded[:, None, :], out=kept)
        held = kept.sum(axis=2)
        last = self.dim - 1
        edge = kept[:, :, last] + kept[:, :, -1]
        feature = (held + TINY) / (total + TINY)
        energy = (edge + TINY) / (edge_total + TINY)
        match = feature * feature * feature * energy * energy
        match[np.arange(room) >= sizes[:, None]] = -np.inf  # beyond each slot's categories
        best = np.argmax(match, axis=1)
        rows = np.arange(slots.size)
        top = match[rows, best]
        rho_ub = self.rho_ub[slots]
        absorbs = learn & (top >= rho_ub)
        row, rank = np.nonzero(absorbs[:, None] & (match >= rho_ub[:, None]))
        absorbing = self.pages.rows(slots[row], rank)
        self.pages.put(absorbing, kept[row, rank], held[row, rank], edge[row, rank])
        return top, energy[rows, best], absorbs

    def rescale(self, slots: IndexArray, dims: slice, scale: FloatArray, shift: FloatArray) -> None:
        """Map features ``dims`` by x -> scale * x + shift in every category of ``slots``."""
        start, stop, _ = dims.indices(self.dim)
        rows, owner = self.pages.held_rows(slots, self.count[slots].astype(np.intp))
        scale = scale[owner, None]
        shift = shift[owner, None]
        weights = self.pages.weights[rows]
        weights[:, start:stop] = weights[:, start:stop] * scale + shift
        high = slice(self.dim + start, self.dim + stop)
        weights[:, high] = weights[:, high] * scale + (1.0 - scale - shift)
        self.store(rows, weights)

    def add(self, slots: IndexArray, coded: FloatArray) -> None:
        """A new category of each of ``slots`` (distinct): the box of one coded input."""
        if slots.size == 0:
            return
        rank = self.count[slots].astype(np.intp)
        self.pages.make_room(slots, rank)
        self.store(self.pages.rows(slots, rank), coded)
        self.count[slots] = rank + 1.0

    def store(self, rows: IndexArray, weights: FloatArray) -> None:
        """Set the categories at ``rows`` of the pool to ``weights``, with their sums."""
        total = weights.sum(axis=-1)
        edge = weights[..., self.dim - 1] + weights[..., -1]
        self.pages.put(rows, weights, total, edge)

    def release(self, slots: IndexArray) -> None:
        """Forget every category of ``slots`` and give up their pages."""
        self.pages.release(slots)
        self.count[slots] = 0.0

    @property
    def nbytes(self) -> int:
        """Bytes held: the categories' pages and the per-slot arrays."""
        slots = self.count.nbytes + self.rho_lb.nbytes + self.rho_ub.nbytes
        return self.pages.nbytes + int(slots)


def chunks(sizes: IndexArray) -> list[IndexArray]:
    """The positions of the nonzero ``sizes`` in groups of about ``CHUNK`` in all.

    When there are more, the smallest come first, so that a group's sizes are alike (a
    group is matched as one table as wide as its largest).

    >>> [c.tolist() for c in chunks(np.array([3, 0, 1, 2]))]
    [[0, 2, 3]]
    """
    owners = np.flatnonzero(sizes)
    if int(sizes.sum()) <= CHUNK:
        return [owners] if owners.size else []
    owners = owners[np.argsort(sizes[owners], kind="stable")]
    filled = np.cumsum(sizes[owners]) // CHUNK
    return np.split(owners, np.flatnonzero(np.diff(filled)) + 1)


class FuzzyArt:
    """One stream's fuzzy ART: one slot of an :class:`ArtBank` (by default a bank of its own).

    >>> art = FuzzyArt(dim=2, rho=0.9)
    >>> art.train(np.array([0.2, 0.4]))
    (0.0, 0.0, True)
    >>> art.train(np.array([0.2, 0.4]))[:2]
    (1.0, 1.0)
    >>> art.count
    1
    """

    def __init__(
        self, dim: int, rho: float = 0.0, *, bank: ArtBank | None = None, slot: int = 0
    ) -> None:
        if bank is None:
            bank = ArtBank(dim, rho)
            bank.reserve(slot + 1)
        self.bank = bank
        self.slots = np.array([slot], dtype=np.intp)

    @property
    def count(self) -> int:
        """Categories learned so far."""
        return int(self.bank.count[self.slots[0]])

    @property
    def weights(self) -> FloatArray:
        """The categories' weights (the first ``count`` rows), one row per category."""
        pages, slot = self.bank.pages, self.slots[0]
        size_class = int(pages.size_class[slot])
        if size_class < 0:
            return np.zeros((0, pages.width))
        start = int(pages.start[slot])
        weights: FloatArray = pages.weights[start : start + (FIRST_ROOM << size_class)]
        return weights

    def train(self, features: FloatArray, learn: bool = True) -> tuple[float, float, bool]:
        """Match (and learn) one input: best match, its energy similarity, and whether new."""
        match, energy, new = self.bank.train(
            self.slots, features[None, :], np.array([learn], dtype=np.bool_)
        )
        return float(match[0]), float(energy[0]), bool(new[0])

    def rescale(self, dims: slice, scale: float, shift: float) -> None:
        """Map features ``dims`` by x -> scale * x + shift in every category's box."""
        self.bank.rescale(self.slots, dims, np.array([scale]), np.array([shift]))


def cosine_similarity(features: FloatArray) -> FloatArray:
    """Pairwise cosine similarity of the rows; a zero row against x scores 1 - |x|."""
    norms = np.linalg.norm(features, axis=1)
    safe = np.where(norms == 0.0, 1.0, norms)
    unit = features / safe[:, None]
    sim = unit @ unit.T
    zero = norms == 0.0
    sim[zero, :] = 1.0 - norms[None, :]
    sim[:, zero] = 1.0 - norms[:, None]
    np.fill_diagonal(sim, 1.0)
    return sim


def starting_vigilance(features: FloatArray, rho: float, trend: int) -> FloatArray:
    """Per stream, the mean best match of the later half of its warm-up inputs in a fresh ART.

    ``features`` holds one row of inputs per stream (streams, inputs, dim). Each stream's
    inputs are learned from the least typical (smallest total cosine similarity) to the most
    typical, the first one only seeding the order as in ARTime, by an ART of vigilance
    ``rho``; the streams' ARTs learn side by side, one input each per step.
    """
    streams, inputs, dim = features.shape
    order = np.array(
        [np.argsort(cosine_similarity(rows).sum(axis=0), kind="stable") for rows in features],
        dtype=np.intp,
    ).reshape(streams, inputs)
    art = ArtBank(dim, rho)
    art.reserve(streams)
    everyone = np.arange(streams)
    learn = np.ones(streams, dtype=np.bool_)
    matches = np.zeros((streams, inputs))
    for k in range(1, inputs):
        matches[:, k] = art.train(everyone, features[everyone, order[:, k]], learn)[0]
    # One stream at a time: NumPy's mean of one row, as ARTime's mean of one stream's list.
    return np.array([np.mean(row) for row in matches[:, trend // 2 - 1 :]])

"""Adaptive resonance: has the stream's recent shape ever fallen into one of its categories?

Written from the published description of ARTime (NAB's best detector, a dual-vigilance
fuzzy ART over downsampled windows): every ``step`` readings become one value (the block's
mean, or its reading farthest from a running mean when that is a real spike), cut into
``levels`` levels of the stream's range and snapped to the running median when close to it.
The last ``window`` levels and their Haar wavelet (each scaled to [0, 1]) are one input;
fuzzy ART with complement coding keeps categories as hyperboxes of inputs, and an input
that resonates with no category above the lower vigilance is an anomaly, as sure as its
best match is far below both vigilances. Vigilance follows the stream's own similarities,
and after an anomaly or a new category the detector is masked for a while.

ARTime is handed the whole file's range and its length (which sets its step, about the
probationary period over 104, and the batch it learns first); this variant is causal. Each
stream runs a ladder of fixed steps side by side: a step's first ``step * trend`` readings
are its warm-up, whose range (padded) normalises the stream and which it learns as one batch
once they have all arrived; the coarsest step that has seen ``climb`` times its warm-up
scores, so a young stream is watched at a fine step and an old one at a coarse step, as
ARTime does for short and long files. A later value outside the range widens it: that is an
affine map of input space, which maps every category's box to a box, so the categories,
the recent window and the level histogram are mapped with it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector

#: The upper vigilance never exceeds this: a stream can always surprise.
RHO_UB_CAP = 0.97
#: Share of the gap to the recent lowest similarity by which the lower vigilance rises...
RHO_LB_RISE = 0.19
#: ...and the lower vigilance falls by half the mean shortfall of recent similarities below
#: the upper one (those short by more than ``SHORTFALL_FROM``, each capped at
#: ``SHORTFALL_CAP``), at least ``SHORTFALL_MIN`` / 2.
SHORTFALL_FROM = 0.05
SHORTFALL_CAP = 0.37
SHORTFALL_MIN = 0.01
#: Added to both sides of the similarity ratios, so that a box with no weight keeps all.
TINY = 1e-12
#: Weights of the confidence: distance below the upper and lower vigilance, energy mismatch.
CONFIDENCE_UB = 0.35
CONFIDENCE_LB = 0.65
CONFIDENCE_ENERGY = 1.5
#: While masked, an anomaly needs a similarity below this share of the last anomaly's
#: (``MASKED_BELOW_ANOMALY`` right after an anomaly, ``MASKED_BELOW_CATEGORY`` otherwise).
MASKED_BELOW_ANOMALY = 0.90
MASKED_BELOW_CATEGORY = 0.70


@dataclass(frozen=True, slots=True, kw_only=True)
class ResonanceSettings:
    """One configuration for every stream (ARTime's constants, with a causal range)."""

    #: Readings per downsampled value: a ladder of steps, finest first (a step of 1 as
    #: well scored the same on NAB and cost a third more time)...
    steps: tuple[int, ...] = (2, 4, 7)
    #: ...and a step takes over once the stream has ``climb`` times its warm-up of readings
    #: (``climb * step * trend``). Chosen on half A of NAB (1, 2, 3, 4, 5 and 6.7 tried).
    climb: float = 4.0
    #: Downsampled values in the warm-up batch; also the horizon of the vigilance updates.
    trend: int = 104
    #: Downsampled values per input window (a power of two, for the Haar wavelet).
    window: int = 8
    #: Levels of the range a downsampled value is cut into...
    levels: int = 80
    #: ...and values within this share of the range from the running median snap to it.
    chomp: float = 0.075
    #: A block's extreme replaces its mean only when it is this share of the mean away.
    spike_share: float = 0.1
    #: Vigilance of the ART that estimates the starting vigilance from the warm-up.
    initial_rho: float = 0.8
    #: The warm-up range is padded by this share of its span on both sides, and a value
    #: beyond it widens it to the value plus this share of its distance to the other end.
    pad: float = 0.5
    #: Masking after an anomaly, in downsampled values (ARTime: 1.5 windows).
    mask: int = 12


def haar_matrix(size: int) -> FloatArray:
    """The full orthonormal Haar transform of ``size`` (a power of two) points as a matrix.

    Rows: the overall average, then details from the coarsest to the finest, each the later
    half minus the earlier one (a rise is positive).

    >>> h = haar_matrix(8)
    >>> bool(np.allclose(h @ h.T, np.eye(8)))
    True
    >>> (haar_matrix(2) * np.sqrt(2)).round(6).tolist()
    [[1.0, 1.0], [-1.0, 1.0]]
    """
    rows = np.eye(size)
    out: list[FloatArray] = []
    current = rows
    while current.shape[0] > 1:
        even, odd = current[0::2], current[1::2]
        out.insert(0, (odd - even) / np.sqrt(2.0))
        current = (even + odd) / np.sqrt(2.0)
    return np.vstack([current, *out])


def unit_scale(values: FloatArray) -> FloatArray:
    """``values`` shifted to a minimum of 0 and scaled to a maximum of 1 (if not constant)."""
    shifted: FloatArray = values - values.min()
    top = float(shifted.max())
    return shifted / top if top != 0.0 else shifted


class FuzzyArt:
    """Dual-vigilance fuzzy ART with fast learning over complement-coded inputs.

    A category is a hyperbox: its weight is (lower corner, 1 - upper corner). An input's
    match is (feature similarity)^3 * (energy similarity)^2, where the feature similarity is
    the share of the box's weight the input keeps and the energy similarity the same on the
    last feature alone (the newest level). Categories matching at least ``rho_ub`` absorb
    the input; otherwise, a best match of at least ``rho_lb`` starts a new category of a
    known kind and a weaker one starts a new kind: that is the anomaly.
    """

    def __init__(self, dim: int, rho: float = 0.0) -> None:
        self.dim = dim
        self.weights = np.zeros((16, 2 * dim))
        self.count = 0
        self.rho_lb = rho
        self.rho_ub = rho

    def train(self, features: FloatArray, learn: bool = True) -> tuple[float, float, bool]:
        """Match (and learn) one input: best match, its energy similarity, and whether new.

        ``new`` is True when no category matched at least the lower vigilance (always when
        ``learn`` is False). A box spanning the whole space (no weight) keeps every input.
        """
        coded = np.concatenate((features, 1.0 - features))
        n = self.count
        if n == 0:
            if learn:
                self._add(coded)
            return 0.0, 0.0, True
        weights = self.weights[:n]
        kept = np.minimum(weights, coded)
        last = self.dim - 1
        feature = (kept.sum(axis=1) + TINY) / (weights.sum(axis=1) + TINY)
        energy = (kept[:, last] + kept[:, -1] + TINY) / (weights[:, last] + weights[:, -1] + TINY)
        match = feature * feature * feature * energy * energy
        best = int(np.argmax(match))
        top = float(match[best])
        top_energy = float(energy[best])
        if not learn:
            return top, top_energy, True
        if top >= self.rho_ub:
            absorb = match >= self.rho_ub
            weights[absorb] = kept[absorb]
            return top, top_energy, False
        self._add(coded)
        return top, top_energy, top < self.rho_lb

    def rescale(self, dims: slice, scale: float, shift: float) -> None:
        """Map features ``dims`` by x -> scale * x + shift in every category's box."""
        n = self.count
        low = self.weights[:n, dims]
        low *= scale
        low += shift
        start, stop, _ = dims.indices(self.dim)
        high = self.weights[:n, self.dim + start : self.dim + stop]
        high *= scale
        high += 1.0 - scale - shift

    def _add(self, coded: FloatArray) -> None:
        if self.count == self.weights.shape[0]:
            self.weights = np.concatenate([self.weights, np.zeros_like(self.weights)])
        self.weights[self.count] = coded
        self.count += 1


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


def starting_vigilance(features: FloatArray, rho: float, trend: int) -> float:
    """Mean best match of the later half of the warm-up inputs in a fresh ART.

    The inputs are learned from the least typical (smallest total cosine similarity) to the
    most typical, the first one only seeding the order as in ARTime, by an ART of vigilance
    ``rho``.
    """
    order = np.argsort(cosine_similarity(features).sum(axis=0), kind="stable")
    art = FuzzyArt(features.shape[1], rho)
    matches = [0.0]
    for row in order[1:]:
        matches.append(art.train(features[row])[0])
    return float(np.mean(matches[trend // 2 - 1 :]))


class ResonanceStream:
    """One stream's state: downsampling, levels, window, ART and vigilance bookkeeping."""

    def __init__(self, settings: ResonanceSettings, step: int) -> None:
        self.settings = settings
        self.step = step
        self.trend = settings.trend
        self.haar = haar_matrix(settings.window)
        self.count = 0
        self.block: list[float] = []
        self.blocks = 0
        self.average = 0.0
        self.warm_values: list[float] = []
        self.warm_samples: list[float] = []
        self.low = 0.0
        self.high = 1.0
        self.histogram = np.zeros(settings.levels + 1)
        self.recent = np.zeros(settings.window)
        self.samples = 0  # downsampled values levelled so far
        self.art = FuzzyArt(2 * settings.window)
        self.inputs = 0  # inputs the ART has seen (ARTime's i)
        self.match_total = 0.0
        self.similarities = deque([1.0] * (self.trend // 2 + 1), maxlen=self.trend // 2 + 1)
        self.shortfalls = deque([0.0] * (self.trend + 1), maxlen=self.trend + 1)
        self.anomaly_matches: list[float] = []
        self.last_anomaly = 0
        self.last_anomaly_match = 0.0
        self.last_update = 0
        self.mask_after_category = False
        self.since_category = 0

    @property
    def ready(self) -> bool:
        """Whether the warm-up batch has been learned."""
        return len(self.warm_samples) == self.trend

    def push(self, value: float) -> float:
        """Score then learn one reading: the anomaly's confidence, or 0."""
        self.count += 1
        if self.count <= self.step * self.trend:
            self.warm_values.append(value)
        self.block.append(value)
        if len(self.block) < self.step:
            return 0.0
        sample = self._downsample()
        if len(self.warm_samples) < self.trend:
            self.warm_samples.append(sample)
            if len(self.warm_samples) == self.trend:
                self._learn_warmup()
            return 0.0
        self._cover(sample)
        return self._detect(self._features(sample))

    def fit_range(self, values: FloatArray) -> tuple[float, float]:
        """The normalising range learned from the warm-up readings, padded."""
        low, high = float(values.min()), float(values.max())
        span = high - low
        pad = self.settings.pad * span if span > 0.0 else 1e-3 * max(abs(low), 1.0)
        return low - pad, high + pad

    def _downsample(self) -> float:
        """The block's value: its mean, or its extreme farthest from the running mean."""
        block = self.block
        self.block = []
        mean, top, bottom = sum(block) / len(block), max(block), min(block)
        self.blocks += 1
        self.average = mean if self.blocks == 1 else (self.average + mean) / 2.0
        value = bottom if abs(top - self.average) < abs(bottom - self.average) else top
        if abs(value - mean) < self.settings.spike_share * mean:
            value = mean
        return value

    def _learn_warmup(self) -> None:
        """Fit the range on the warm-up, then learn its inputs as one batch."""
        self.low, self.high = self.fit_range(np.asarray(self.warm_values))
        self.warm_values = []
        features = np.array([self._features(s) for s in self.warm_samples])
        window = self.settings.window
        rho = starting_vigilance(features[window - 1 :], self.settings.initial_rho, self.trend)
        self.art.rho_lb = self.art.rho_ub = rho
        for row in features:
            self._detect(row)

    def _cover(self, sample: float) -> None:
        """Widen the range to hold ``sample``, mapping everything in level units with it."""
        low, high = self.low, self.high
        if low <= sample <= high:
            return
        pad = self.settings.pad
        if sample > high:
            new_low, new_high = low, sample + pad * (sample - low)
        else:
            new_low, new_high = sample - pad * (high - sample), high
        span = new_high - new_low
        scale = (high - low) / span
        shift = (low - new_low) / span
        self.low, self.high = new_low, new_high
        window = self.settings.window
        self.art.rescale(slice(window, 2 * window), scale, shift)
        self.recent = scale * self.recent + shift
        levels = self.settings.levels
        moved = np.rint(scale * np.arange(levels + 1) + shift * levels).astype(np.intp)
        histogram = np.zeros_like(self.histogram)
        np.add.at(histogram, moved, self.histogram)
        self.histogram = histogram

    def _features(self, sample: float) -> FloatArray:
        """Level ``sample``, slide it into the window, and return the window's input."""
        settings = self.settings
        share = (sample - self.low) / (self.high - self.low)
        levels = settings.levels
        level = min(max(round(share * levels), 0), levels)
        self.histogram[level] += 1.0
        median = self.median_level()
        value = level / levels
        if abs(value - median / levels) < settings.chomp:
            value = median / levels
        self.samples += 1
        self.recent = np.concatenate((self.recent[1:], (value,)))
        if self.samples < settings.window:
            return np.zeros(2 * settings.window)
        wavelet = unit_scale(self.haar @ unit_scale(self.recent))
        return np.concatenate([wavelet, self.recent])

    def median_level(self) -> float:
        """The median of the levels so far, the newest (already counted) included."""
        half = (self.samples + 1) // 2
        return float(np.searchsorted(np.cumsum(self.histogram), half, side="right"))

    def _detect(self, features: FloatArray) -> float:
        """Match and learn one input, keep the vigilance bookkeeping; the anomaly or 0."""
        self.inputs += 1
        i = self.inputs
        mask = self.settings.mask
        since_anomaly = i - self.last_anomaly
        if i > self.trend + mask and self.mask_after_category and self.since_category >= mask:
            self.mask_after_category = False
        match, energy, new = self.art.train(features, learn=i >= self.settings.window)
        self.since_category = 0 if new else self.since_category + 1
        self.match_total += match
        self.similarities.append(match)
        self.shortfalls.append(self.art.rho_ub - match)
        if since_anomaly < mask and self.anomaly_matches:
            self.anomaly_matches[-1] = min(self.anomaly_matches[-1], match)
        anomaly = 0.0
        if i > self.trend and new and self._unmasked(match, since_anomaly):
            anomaly = self._confidence(match, energy)
            self.anomaly_matches.append(match)
            self.last_anomaly_match = match
            self.last_anomaly = i
        self.mask_after_category = new or self.mask_after_category
        trend_due = i - self.last_update >= self.trend // 2
        if i > self.trend and (since_anomaly == mask or trend_due):
            self._adapt_vigilance(i)
        return anomaly

    def _unmasked(self, match: float, since_anomaly: int) -> bool:
        """Whether a new kind of input counts: unmasked, or far below the last anomaly."""
        near_anomaly = since_anomaly <= self.settings.mask
        if not (self.mask_after_category or near_anomaly):
            return True
        share = MASKED_BELOW_ANOMALY if near_anomaly else MASKED_BELOW_CATEGORY
        return match < self.last_anomaly_match * share

    def _confidence(self, match: float, energy: float) -> float:
        """How far below both vigilances the best match fell, plus its energy mismatch."""
        miss = 1.0 - min(0.999, match)
        upper = (miss - (1.0 - self.art.rho_ub)) / miss
        lower = (miss - (1.0 - self.art.rho_lb)) / miss
        score = CONFIDENCE_UB * upper + CONFIDENCE_LB * lower + CONFIDENCE_ENERGY * (1.0 - energy)
        return round(min(1.0, score), 6)

    def _adapt_vigilance(self, i: int) -> None:
        """Upper vigilance: the mean match; lower: towards the recent lowest match."""
        rho_ub = min(RHO_UB_CAP, self.match_total / i)
        rho_lb = self.art.rho_lb
        lowest = min(self.similarities)
        if rho_lb <= lowest:
            rho_lb += (lowest - rho_lb) * RHO_LB_RISE
        else:
            fall = 0.0
            if i > 2 * self.trend:
                short = [min(x, SHORTFALL_CAP) for x in self.shortfalls if x > SHORTFALL_FROM]
                if short:
                    fall = sum(short) / len(short)
            rho_lb -= max(SHORTFALL_MIN, fall) / 2.0
            if self.anomaly_matches:
                rho_lb = max(float(np.mean(self.anomaly_matches)), rho_lb)
        self.art.rho_lb = min(rho_ub, rho_lb)
        self.art.rho_ub = rho_ub
        self.last_update = i
        self.mask_after_category = True


class ResonanceLadder:
    """One stream seen at several steps; the coarsest step that is due scores.

    A step is due once it has learned its warm-up and the stream has ``climb`` times that
    many readings. Finer steps are dropped when a coarser one takes over, so the ladder
    costs little more than its top step once climbed. ARTime's step is the probationary
    period over 104, 1 for the shortest NAB files and 7 for the longest; climbing as
    readings arrive is the causal way to score early with a fine step, later a coarse one.
    """

    def __init__(self, rungs: list[ResonanceStream], climb: float = 1.0) -> None:
        self.rungs = rungs
        self.climb = climb

    def push(self, value: float) -> float:
        """Score then learn one reading: the active step's confidence, or 0."""
        rungs = self.rungs
        scores = [rung.push(value) for rung in rungs]
        active = max(
            (k for k, rung in enumerate(rungs) if rung.ready and rung.count >= self.due(rung)),
            default=0,
        )
        if active:
            self.rungs = rungs[active:]
        return scores[active]

    def due(self, rung: ResonanceStream) -> float:
        """Readings after which ``rung`` takes over."""
        return self.climb * rung.step * rung.trend


class Resonance(UnivariateDetector):
    """ARTime's adaptive-resonance detector, made causal; its surprise is the confidence.

    The surprise is 0 on most readings and, on the last reading of a downsampling block
    whose window is a new kind of input (and not masked), a confidence in (0, 1]. It is a
    score already, so ``to_score`` only clips it; scale it (``Smoothed(..., scale=10)``)
    to put it beside sigma-like surprises.

    >>> detector = Resonance(ResonanceSettings(steps=(2,), trend=40))
    >>> ts = np.arange(1200.0)
    >>> rhythm = np.tile([0.0, 0.0, 1.0, 3.0, 1.0, 0.0, 0.0, 0.0], 150)
    >>> scores = detector.update(np.zeros(1200, dtype=np.intp), rhythm, ts)
    >>> float(scores[400:].max())
    0.0
    >>> burst = detector.update(np.zeros(8, dtype=np.intp), np.full(8, 6.0), ts[:8] + 1200)
    >>> bool(burst.max() > 0.0)
    True
    """

    name = "resonance"

    def __init__(self, settings: ResonanceSettings | None = None) -> None:
        super().__init__(())
        self.settings = settings or ResonanceSettings()
        self.streams: list[ResonanceLadder] = []

    def new_stream(self) -> ResonanceLadder:
        """A fresh stream state (one per slot)."""
        settings = self.settings
        rungs = [ResonanceStream(settings, s) for s in settings.steps]
        return ResonanceLadder(rungs, settings.climb)

    def reserve(self, size: int) -> None:
        """Make room for slots ``0 .. size - 1``."""
        super().reserve(size)
        while len(self.streams) < size:
            self.streams.append(self.new_stream())

    def to_score(self, surprise: FloatArray) -> FloatArray:
        """The confidence, clipped to [0, 1]."""
        return np.clip(surprise, 0.0, 1.0)

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one reading of each of ``slots``: a confidence, or 0."""
        streams = self.streams
        return np.array(
            [
                streams[slot].push(value)
                for slot, value in zip(slots.tolist(), values.tolist(), strict=True)
            ],
            dtype=np.float64,
        )

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

Every stream's state lives in arrays, one row per slot (the ART's categories too: see
:mod:`~civicguard.detect.univariate._fuzzy_art`), and each vector step works on all the
streams concerned at once: every stream's reading, every block that completes at this step,
every new input of the ARTs. Rare events (a warm-up learned, a range widened) are vector
steps over just the streams they concern. Sums over a stream's recent values (a block's
mean, the mean shortfall) add in the stream's order, and the mean of its anomalies' matches
is NumPy's over that stream alone, so a stream scores exactly as it would alone, one
reading at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from civicguard.detect.univariate._base import (
    FloatArray,
    IndexArray,
    SlotState,
    UnivariateDetector,
)
from civicguard.detect.univariate._fuzzy_art import ArtBank, starting_vigilance

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
    """Each row of ``values`` shifted to a minimum of 0 and scaled to a maximum of 1.

    A constant row is only shifted.

    >>> unit_scale(np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])).tolist()
    [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]
    """
    shifted: FloatArray = values - values.min(axis=-1, keepdims=True)
    top = shifted.max(axis=-1, keepdims=True)
    scaled: FloatArray = shifted / np.where(top != 0.0, top, 1.0)
    return scaled


def fit_range(lowest: FloatArray, highest: FloatArray, pad: float) -> tuple[FloatArray, FloatArray]:
    """The normalising ranges learned from warm-ups spanning ``lowest`` to ``highest``.

    Each is padded by ``pad`` times its span on both sides (a flat warm-up by a thousandth
    of its value, or by 1e-3 near 0).
    """
    span = highest - lowest
    padding = np.where(span > 0.0, pad * span, 1e-3 * np.maximum(np.abs(lowest), 1.0))
    return lowest - padding, highest + padding


def remember(ring: FloatArray, slots: IndexArray, inputs: FloatArray, value: FloatArray) -> None:
    """Write each slot's newest ``value``, its ``inputs``-th, into its row of ``ring``."""
    ring[slots, ((inputs - 1.0) % ring.shape[1]).astype(np.intp)] = value


class ResonanceRung(SlotState):
    """One step of the ladder for every stream: levels, window, ART and vigilance bookkeeping.

    The detector hands a rung each stream's block of ``step`` readings when it completes.
    Counts are kept as floats, like every per-slot array; ring buffers hold the last
    similarities and shortfalls (a stream's ``k``-th input at ``(k - 1) % width``), and
    ``anomaly_matches`` the best match of each anomaly so far (``anomalies`` of them).
    """

    blocks: FloatArray  # downsampled values so far
    average: FloatArray  # running mean of the block means
    warm: FloatArray  # the warm-up's downsampled values
    low: FloatArray  # the normalising range
    high: FloatArray
    histogram: FloatArray  # downsampled values per level
    recent: FloatArray  # the last ``window`` levels, in [0, 1]
    samples: FloatArray  # downsampled values levelled so far
    inputs: FloatArray  # inputs the ART has seen (ARTime's i)
    match_total: FloatArray
    similarities: FloatArray
    shortfalls: FloatArray
    anomalies: FloatArray
    anomaly_matches: FloatArray
    last_anomaly: FloatArray
    last_anomaly_match: FloatArray
    last_update: FloatArray
    masked: FloatArray  # 1 while masked after a new category
    since_category: FloatArray

    def __init__(self, settings: ResonanceSettings, step: int) -> None:
        trend, window = settings.trend, settings.window
        super().__init__(
            (
                ("blocks", (), 0.0),
                ("average", (), 0.0),
                ("warm", (trend,), 0.0),
                ("low", (), 0.0),
                ("high", (), 1.0),
                ("histogram", (settings.levels + 1,), 0.0),
                ("recent", (window,), 0.0),
                ("samples", (), 0.0),
                ("inputs", (), 0.0),
                ("match_total", (), 0.0),
                ("similarities", (trend // 2 + 1,), 1.0),
                ("shortfalls", (trend + 1,), 0.0),
                ("anomalies", (), 0.0),
                ("anomaly_matches", (4,), 0.0),
                ("last_anomaly", (), 0.0),
                ("last_anomaly_match", (), 0.0),
                ("last_update", (), 0.0),
                ("masked", (), 0.0),
                ("since_category", (), 0.0),
            )
        )
        self.settings = settings
        self.step = step
        self.trend = trend
        self.haar = haar_matrix(window)
        self.art = self.part(ArtBank(2 * window))

    def push(
        self, slots: IndexArray, block: FloatArray, lowest: FloatArray, highest: FloatArray
    ) -> FloatArray:
        """Score then learn one block of readings per slot: the anomaly's confidence, or 0.

        ``block`` holds each stream's last ``step`` readings, oldest first; ``lowest`` and
        ``highest`` the extremes of all its readings so far (those of the warm-up when it
        completes with this block).
        """
        sample = self.downsample(slots, block)
        blocks = self.blocks[slots]
        confidence = np.zeros(slots.size)
        warm = blocks <= self.trend
        if warm.any():
            self.warm[slots[warm], (blocks[warm] - 1.0).astype(np.intp)] = sample[warm]
            full = blocks == self.trend
            if full.any():
                self.learn_warmup(slots[full], lowest[full], highest[full])
        live = ~warm
        if live.any():
            slots, sample = slots[live], sample[live]
            self.cover(slots, sample)
            confidence[live] = self.detect(slots, self.features(slots, sample))
        return confidence

    def downsample(self, slots: IndexArray, block: FloatArray) -> FloatArray:
        """Each block's value: its mean, or its extreme farthest from the running mean."""
        total = np.zeros(slots.size)
        for column in block.T:  # in order, as Python's sum of the block's list
            total = total + column
        mean = total / self.step
        top, bottom = block.max(axis=1), block.min(axis=1)
        blocks = self.blocks[slots] + 1.0
        self.blocks[slots] = blocks
        average = np.where(blocks == 1.0, mean, (self.average[slots] + mean) / 2.0)
        self.average[slots] = average
        value = np.where(np.abs(top - average) < np.abs(bottom - average), bottom, top)
        sample: FloatArray = np.where(
            np.abs(value - mean) < self.settings.spike_share * mean, mean, value
        )
        return sample

    def learn_warmup(self, slots: IndexArray, lowest: FloatArray, highest: FloatArray) -> None:
        """Fit the range on the warm-up, then learn its inputs as one batch, per slot."""
        settings = self.settings
        self.low[slots], self.high[slots] = fit_range(lowest, highest, settings.pad)
        features = np.stack(
            [self.features(slots, self.warm[slots, k]) for k in range(self.trend)], axis=1
        )
        window = settings.window
        rho = starting_vigilance(features[:, window - 1 :], settings.initial_rho, self.trend)
        self.art.rho_lb[slots] = rho
        self.art.rho_ub[slots] = rho
        for k in range(self.trend):
            self.detect(slots, features[:, k])

    def cover(self, slots: IndexArray, sample: FloatArray) -> None:
        """Widen ranges to hold ``sample``, mapping everything in level units with them."""
        low, high = self.low[slots], self.high[slots]
        beyond = ~((low <= sample) & (sample <= high))
        if not beyond.any():
            return
        slots, sample, low, high = slots[beyond], sample[beyond], low[beyond], high[beyond]
        pad = self.settings.pad
        above = sample > high
        new_low = np.where(above, low, sample - pad * (high - sample))
        new_high = np.where(above, sample + pad * (sample - low), high)
        span = new_high - new_low
        scale = (high - low) / span
        shift = (low - new_low) / span
        self.low[slots], self.high[slots] = new_low, new_high
        window = self.settings.window
        self.art.rescale(slots, slice(window, 2 * window), scale, shift)
        self.recent[slots] = scale[:, None] * self.recent[slots] + shift[:, None]
        levels = self.settings.levels
        moved = np.rint(scale[:, None] * np.arange(levels + 1) + shift[:, None] * levels)
        histogram = np.zeros((slots.size, levels + 1))
        rows = np.arange(slots.size)[:, None]
        np.add.at(histogram, (rows, moved.astype(np.intp)), self.histogram[slots])
        self.histogram[slots] = histogram

    def features(self, slots: IndexArray, sample: FloatArray) -> FloatArray:
        """Level ``sample``, slide it into the window, and return each window's input."""
        settings = self.settings
        levels = settings.levels
        share = (sample - self.low[slots]) / (self.high[slots] - self.low[slots])
        level = np.minimum(np.maximum(np.rint(share * levels), 0), levels).astype(np.intp)
        self.histogram[slots, level] += 1.0
        samples = self.samples[slots]
        # The median of the levels so far, the newest (already counted) included.
        half = (samples + 1.0) // 2.0
        median = np.count_nonzero(np.cumsum(self.histogram[slots], axis=1) <= half[:, None], 1)
        value = level / levels
        centre = median / levels
        value = np.where(np.abs(value - centre) < settings.chomp, centre, value)
        samples += 1.0
        self.samples[slots] = samples
        recent = np.concatenate((self.recent[slots, 1:], value[:, None]), axis=1)
        self.recent[slots] = recent
        # A stack of matrix-vector products: each as the one-stream product, to the last bit.
        wavelet = unit_scale(np.matmul(self.haar, unit_scale(recent)[:, :, None])[:, :, 0])
        features = np.concatenate((wavelet, recent), axis=1)
        windowed: FloatArray = np.where((samples >= settings.window)[:, None], features, 0.0)
        return windowed

    def detect(self, slots: IndexArray, features: FloatArray) -> FloatArray:
        """Match and learn one input per slot, keep the vigilance bookkeeping; anomaly or 0."""
        trend, mask = self.trend, self.settings.mask
        inputs = self.inputs[slots] + 1.0
        self.inputs[slots] = inputs
        since_anomaly = inputs - self.last_anomaly[slots]
        since_category = self.since_category[slots]
        masked = (self.masked[slots] > 0.0) & ~((inputs > trend + mask) & (since_category >= mask))
        match, energy, new = self.art.train(slots, features, inputs >= self.settings.window)
        self.since_category[slots] = np.where(new, 0.0, since_category + 1.0)
        self.match_total[slots] += match
        remember(self.similarities, slots, inputs, match)
        remember(self.shortfalls, slots, inputs, self.art.rho_ub[slots] - match)
        count = self.anomalies[slots]
        lower = (since_anomaly < mask) & (count > 0.0)
        if lower.any():
            rows, last = slots[lower], (count[lower] - 1.0).astype(np.intp)
            self.anomaly_matches[rows, last] = np.minimum(
                self.anomaly_matches[rows, last], match[lower]
            )
        confidence = np.zeros(slots.size)
        anomaly = (inputs > trend) & new & self.unmasked(slots, match, since_anomaly, masked)
        if anomaly.any():
            at = np.flatnonzero(anomaly)
            confidence[at] = self.confidence(slots[at], match[at], energy[at])
            self.add_anomaly(slots[at], match[at], inputs[at])
        self.masked[slots] = new | masked
        trend_due = inputs - self.last_update[slots] >= trend // 2
        adapt = (inputs > trend) & ((since_anomaly == mask) | trend_due)
        if adapt.any():
            self.adapt_vigilance(slots[adapt], inputs[adapt])
        return confidence

    def unmasked(
        self,
        slots: IndexArray,
        match: FloatArray,
        since_anomaly: FloatArray,
        masked: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Whether a new kind of input counts: unmasked, or far below the last anomaly."""
        near_anomaly = since_anomaly <= self.settings.mask
        share = np.where(near_anomaly, MASKED_BELOW_ANOMALY, MASKED_BELOW_CATEGORY)
        below = match < self.last_anomaly_match[slots] * share
        unmasked: npt.NDArray[np.bool_] = ~(masked | near_anomaly) | below
        return unmasked

    def confidence(self, slots: IndexArray, match: FloatArray, energy: FloatArray) -> FloatArray:
        """How far below both vigilances the best match fell, plus its energy mismatch."""
        miss = 1.0 - np.minimum(0.999, match)
        upper = (miss - (1.0 - self.art.rho_ub[slots])) / miss
        lower = (miss - (1.0 - self.art.rho_lb[slots])) / miss
        score = CONFIDENCE_UB * upper + CONFIDENCE_LB * lower + CONFIDENCE_ENERGY * (1.0 - energy)
        # Python's round (to the nearest decimal, unlike NumPy's), one anomaly at a time.
        return np.array([round(x, 6) for x in np.minimum(1.0, score).tolist()])

    def add_anomaly(self, slots: IndexArray, match: FloatArray, inputs: FloatArray) -> None:
        """Record an anomaly of each of ``slots`` at input ``inputs`` with best ``match``."""
        count = self.anomalies[slots]
        room = self.anomaly_matches.shape[1]
        if int(count.max()) >= room:
            wider = np.zeros_like(self.anomaly_matches)
            self.anomaly_matches = np.concatenate((self.anomaly_matches, wider), axis=1)
        self.anomaly_matches[slots, count.astype(np.intp)] = match
        self.anomalies[slots] = count + 1.0
        self.last_anomaly_match[slots] = match
        self.last_anomaly[slots] = inputs

    def adapt_vigilance(self, slots: IndexArray, inputs: FloatArray) -> None:
        """Upper vigilance: the mean match; lower: towards the recent lowest match."""
        rho_ub = np.minimum(RHO_UB_CAP, self.match_total[slots] / inputs)
        rho_lb = self.art.rho_lb[slots]
        lowest = self.similarities[slots].min(axis=1)
        rises = rho_lb <= lowest
        fall = np.zeros(slots.size)
        long = ~rises & (inputs > 2 * self.trend)
        if long.any():
            fall[long] = self.mean_shortfall(slots[long], inputs[long])
        fallen = rho_lb - np.maximum(SHORTFALL_MIN, fall) / 2.0
        # NumPy's mean of each stream's list of anomaly matches, one stream at a time.
        for k in np.flatnonzero(~rises & (self.anomalies[slots] > 0.0)).tolist():
            matches = self.anomaly_matches[slots[k], : int(self.anomalies[slots[k]])]
            fallen[k] = max(float(np.mean(matches)), float(fallen[k]))
        rho_lb = np.where(rises, rho_lb + (lowest - rho_lb) * RHO_LB_RISE, fallen)
        self.art.rho_lb[slots] = np.minimum(rho_ub, rho_lb)
        self.art.rho_ub[slots] = rho_ub
        self.last_update[slots] = inputs
        self.masked[slots] = 1.0

    def mean_shortfall(self, slots: IndexArray, inputs: FloatArray) -> FloatArray:
        """Mean of the recent shortfalls beyond ``SHORTFALL_FROM``, each capped; 0 if none."""
        width = self.shortfalls.shape[1]
        oldest_first = ((inputs[:, None] + np.arange(width)) % width).astype(np.intp)
        recent = self.shortfalls[slots[:, None], oldest_first]
        counted = recent > SHORTFALL_FROM
        capped = np.where(counted, np.minimum(recent, SHORTFALL_CAP), 0.0)
        # A running sum adds in order, as Python's sum of the list does (the zeros add nothing).
        total = np.cumsum(capped, axis=1)[:, -1]
        number = np.count_nonzero(counted, axis=1)
        mean: FloatArray = np.where(number > 0, total / np.maximum(number, 1), 0.0)
        return mean


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
    #: Readings per stream so far, and their extremes.
    count: FloatArray
    lowest: FloatArray
    highest: FloatArray
    #: The last readings of each stream, the ``k``-th at ``k % width`` (as many as the
    #: coarsest step).
    readings: FloatArray
    #: The finest step each stream still runs (an index into ``rungs``): the one that scores.
    first: FloatArray

    def __init__(self, settings: ResonanceSettings | None = None) -> None:
        self.settings = settings or ResonanceSettings()
        super().__init__(
            (
                ("count", (), 0.0),
                ("lowest", (), np.inf),
                ("highest", (), -np.inf),
                ("readings", (max(self.settings.steps),), 0.0),
                ("first", (), 0.0),
            )
        )
        settings = self.settings
        self.rungs = [self.part(ResonanceRung(settings, s)) for s in settings.steps]
        self.block_steps = np.array(settings.steps, dtype=np.float64)
        self.ranks = np.arange(len(self.rungs))
        # A step takes over once it has learned its warm-up (``step * trend`` readings) and
        # the stream has ``climb * step * trend`` readings.
        self.takes_over = np.array(
            [max(s * settings.trend, settings.climb * s * settings.trend) for s in settings.steps]
        )
        self.reserved = 0

    def reserve(self, size: int) -> None:
        """Make room for slots ``0 .. size - 1``."""
        super().reserve(size)
        self.reserved = max(self.reserved, size)

    def to_score(self, surprise: FloatArray) -> FloatArray:
        """The confidence, clipped to [0, 1]."""
        return np.clip(surprise, 0.0, 1.0)

    def leave(self, slots: IndexArray, first: FloatArray, later: FloatArray) -> None:
        """Streams whose finest step moves from ``first`` to ``later`` leave the steps between.

        Those steps never see the stream again, so their ARTs give up its categories.
        """
        if not (later > first).any():
            return
        for k, rung in enumerate(self.rungs):
            gone = (first <= k) & (k < later)
            if gone.any():
                rung.art.release(slots[gone])

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one reading of each of ``slots``: a confidence, or 0.

        The coarsest step that is due takes over and the finer ones are dropped. Each step
        the stream still runs learns the block the reading completes, if it completes one;
        the score is that of the finest of them (the one that took over), 0 when the
        reading does not complete its block.
        """
        count = self.count[slots] + 1.0
        self.count[slots] = count
        width = self.readings.shape[1]
        self.readings[slots, (count % width).astype(np.intp)] = values
        lowest = np.minimum(self.lowest[slots], values)
        highest = np.maximum(self.highest[slots], values)
        self.lowest[slots], self.highest[slots] = lowest, highest
        due = np.where(count[:, None] >= self.takes_over, self.ranks, 0).max(axis=1)
        first = np.maximum(self.first[slots], due)
        self.leave(slots, self.first[slots], first)
        self.first[slots] = first
        running = (count[:, None] % self.block_steps == 0.0) & (first[:, None] <= self.ranks)
        scores = np.zeros(slots.size)
        for k in np.flatnonzero(running.any(axis=0)).tolist():
            rung = self.rungs[k]
            at = np.flatnonzero(running[:, k])
            ago = np.arange(1 - rung.step, 1)  # the block's readings, oldest first
            places = ((count[at, None] + ago) % width).astype(np.intp)
            block = self.readings[slots[at, None], places]
            confidence = rung.push(slots[at], block, lowest[at], highest[at])
            scoring = first[at] == k
            scores[at[scoring]] = confidence[scoring]
        return scores

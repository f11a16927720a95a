"""The univariate ensemble in the live pipeline, on short averages of each device's fields.

Every (device, numeric field) is one stream of a :class:`~civicguard.detect.univariate.Ensemble`.
Readings are averaged over windows of ``window_s`` seconds of reading time; each closed window
is one point of its stream. Closed windows wait in a buffer and are scored together, so that a
device uploading hundreds of buffered readings at once costs a few wide vector steps, not
hundreds of narrow ones; every stream's buffer shares one ensemble (:class:`SharedEnsemble`),
so that the streams share those steps too. The same scoring runs in batch over a stored series
(:func:`score_series`), window for window as live.

This complements :class:`~civicguard.detect.anomaly.StreamingAnomalyDetector`, which judges
every reading against a moving baseline within seconds: the ensemble answers later (a window
plus the buffer's delay) but sees what a single z-score cannot: a break of the daily profile,
a persistent small shift, a changed spread, a broken rhythm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from civicguard.catalog.model import Catalog, FieldSpec, FieldType
from civicguard.detect._support import (
    Episodes,
    FloatArray,
    IndexArray,
    Places,
    alert,
    explain,
    figure,
    group_ends,
    group_starts,
    label,
    number,
    quantity,
)
from civicguard.detect.base import Detector, SlotIndex
from civicguard.detect.model import Alert, Severity
from civicguard.detect.univariate import (
    ChangePoint,
    ContextNovelty,
    Ensemble,
    EnsembleSettings,
    Layered,
    Resonance,
    RobustZScore,
    SeasonalProfile,
    Smoothed,
    UnivariateDetector,
)
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class PatternSettings:
    """How the live ensemble averages, waits, and how sure it must be to alert."""

    #: Readings of a (device, field) are averaged over windows of this many seconds (at
    #: one reading a second, 10 s keeps the ensemble's cost near 2.5 us a reading).
    window_s: float = 10.0
    #: Windows of a stream scored 0 while the members learn it.
    warmup: int = 60
    #: An ensemble score at least this high alerts (0.5: the most surprising window yet)...
    threshold: float = 0.5
    #: ...if the most surprised member is at least this many sigmas surprised...
    min_sigmas: float = 8.0
    #: ...and the average is off its expected level by this share of the field's normal band
    #: (or range): a stream that sat on one integer for an hour has no spread to measure
    #: its first wobble against, so its surprise says nothing by itself.
    material_share: float = 0.05
    #: A stream that stays clear this many windows may alert again.
    rearm_windows: float = 12.0
    #: Closed windows are scored once this many wait...
    max_pending: int = 20_000
    #: ...or once the oldest has waited this many seconds.
    max_delay_s: float = 5.0
    #: The contextual member's table of contexts per stream: ``2 ** context_bits`` bytes.
    context_bits: int = 12
    #: Windows of history behind the contextual member's anomaly likelihood.
    likelihood_window: int = 720
    #: The resonance (ARTime's family, as ``bench nab`` runs it) laid over the ensemble: a
    #: window whose recent shape fits none the stream has shown alerts when the laid score
    #: (0.4 + 0.4 x its confidence, 0.05 more right after a member's record) reaches this,
    #: and its level moved by ``material_share`` too. ``None`` leaves the resonance out.
    #: The resonance learns a stream's first 208 windows (35 minutes) before it judges.
    shape_threshold: float | None = 0.7


#: Surprises are quoted up to this many sigmas: beyond, the number says nothing more.
MAX_SIGMAS = 100.0

#: What each member's surprise means, in an operator's words.
MEANINGS: dict[str, str] = {
    "robust_zscore": "far from its recent level",
    "seasonal": "unusual for this time of day",
    "change_point": "a sustained shift of level",
    "context": "a break in its usual sequence of levels",
}


def meaning(member: str) -> str:
    """A member's name as an explanation says it.

    >>> meaning("smoothed_seasonal")
    'unusual for this time of day, over several windows'
    """
    if member.startswith("smoothed_"):
        return f"{meaning(member.removeprefix('smoothed_'))}, over several windows"
    return MEANINGS.get(member, member.replace("_", " "))


def live_members(settings: PatternSettings) -> list[UnivariateDetector]:
    """The default ensemble's members for live streams, sized for thousands of streams.

    The relative-entropy member is left out: its chi-square scale assumes independent
    points, and the averages of a smooth daily curve are anything but, so on city streams it
    reads 6 sigmas on a normal day. The contextual table is ``2 ** context_bits`` bytes.
    """
    pointwise: list[UnivariateDetector] = [RobustZScore(), SeasonalProfile(), ChangePoint()]
    smoothed: list[UnivariateDetector] = [
        Smoothed(member, 10) for member in (RobustZScore(), SeasonalProfile(), ChangePoint())
    ]
    context = Smoothed(ContextNovelty(table_bits=settings.context_bits), 20, scale=10.0)
    return [*pointwise, *smoothed, context]


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowVerdicts:
    """Scored windows: where, when, their mean, and what the ensemble made of them."""

    slots: IndexArray
    #: End of each window (Unix seconds) and how many readings it averaged.
    ts: FloatArray
    count: FloatArray
    #: The last sequence number among the window's readings.
    seq: FloatArray
    values: FloatArray
    scores: FloatArray
    surprises: FloatArray
    contributions: FloatArray
    expected: FloatArray
    spread: FloatArray
    #: The resonance's confidence that the stream's recent shape is new (0: not new), and the
    #: score with it laid over the ensemble's (``scores`` without a resonance).
    shape: FloatArray
    laid: FloatArray
    #: Whether the ensemble scored a record (or nearly) shortly before: the laid score's lift.
    near_record: npt.NDArray[np.bool_]
    #: True where the window is an alarm: score and surprise over the settings' bars...
    alarm: npt.NDArray[np.bool_]
    #: ...and where that alarm is the resonance's (a new shape), not the ensemble's.
    shape_alarm: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.slots.size)


def _in_order(slots: IndexArray, window: FloatArray) -> bool:
    """Whether points are already sorted by slot, then window (a stable sort would keep them).

    >>> _in_order(np.array([0, 0, 1, 1]), np.array([5.0, 6.0, 2.0, 2.0]))
    True
    >>> _in_order(np.array([0, 1, 0]), np.array([5.0, 5.0, 6.0]))
    False
    """
    step = np.diff(slots)
    return bool(np.all((step > 0) | ((step == 0) & (np.diff(window) >= 0))))


def _empty_verdicts(members: int) -> WindowVerdicts:
    nothing = np.zeros(0)
    return WindowVerdicts(
        slots=np.zeros(0, dtype=np.intp),
        ts=nothing,
        count=nothing,
        seq=nothing,
        values=nothing,
        scores=nothing,
        surprises=np.zeros((0, members)),
        contributions=np.zeros((0, members)),
        expected=nothing,
        spread=nothing,
        shape=nothing,
        laid=nothing,
        near_record=np.zeros(0, dtype=np.bool_),
        alarm=np.zeros(0, dtype=np.bool_),
        shape_alarm=np.zeros(0, dtype=np.bool_),
    )


@dataclass(kw_only=True)
class _Pending:
    """Closed windows waiting to be scored, as lists of arrays joined at scoring time."""

    parts: list[tuple[IndexArray, FloatArray, FloatArray, FloatArray, FloatArray]] = field(
        default_factory=list
    )
    size: int = 0
    since: float | None = None


class SharedEnsemble:
    """One ensemble behind several window buffers, scoring their closed windows together.

    The ensemble costs mostly per vector step, and a buffer needs as many steps as its
    deepest slot has windows waiting: buffers scored apart pay those steps once each, buffers
    scored together share them. Every slot of every buffer is a slot of its own here, and
    each slot's windows are scored in their order whatever else is scored beside them, so a
    window's verdict is the same as with an ensemble of its own buffer.
    """

    def __init__(self, settings: PatternSettings | None = None) -> None:
        self.settings = settings or PatternSettings()
        self.ensemble = Ensemble(
            EnsembleSettings(
                warmup=self.settings.warmup,
                likelihood_window=self.settings.likelihood_window,
                # Episodes keep alerts to one per event; the ensemble need not go quiet.
                quiet_points=0,
                # New extremes are left to the catalog's normal bands (NormalBandDetector):
                # a live stream's first hours make a new extreme at every rise.
                extreme_margin=None,
            ),
            live_members(self.settings),
        )
        self.member_names = tuple(m.name for m in self.ensemble.members)
        #: The resonance laid over the ensemble, or None when the settings leave it out.
        self.layer = (
            Layered(self.ensemble, Resonance())
            if self.settings.shape_threshold is not None
            else None
        )
        self.buffers: list[WindowedEnsemble] = []
        self._allotted = 0

    def allot(self, count: int) -> IndexArray:
        """``count`` slots of the ensemble that no buffer holds yet."""
        start, self._allotted = self._allotted, self._allotted + count
        return np.arange(start, self._allotted, dtype=np.intp)

    def score(self) -> None:
        """Score and learn every buffer's waiting windows; each buffer keeps its verdicts."""
        waiting = [(b, b.take_pending()) for b in self.buffers if b.pending]
        if not waiting:
            return
        joined = [np.concatenate(column) for column in zip(*(w for _, w in waiting), strict=True)]
        window, total, count, seq = joined[1:]
        slots = np.concatenate([b.shared_slots(w[0]) for b, w in waiting])
        means = total / count
        ends = (window + 1.0) * self.settings.window_s
        verdict = self.ensemble.assess(slots, means, ends)
        shape, laid, near_record = self.lay(slots, means, ends, verdict.scores)
        lo = 0
        for buffer, (own, *_) in waiting:
            hi = lo + own.size
            part = slice(lo, hi)
            buffer.keep(
                WindowVerdicts(
                    slots=own,
                    ts=ends[part],
                    count=count[part],
                    seq=seq[part],
                    values=means[part],
                    scores=verdict.scores[part],
                    surprises=verdict.surprises[part],
                    contributions=verdict.contributions[part],
                    expected=verdict.expected[part],
                    spread=verdict.spread[part],
                    shape=shape[part],
                    laid=laid[part],
                    near_record=near_record[part],
                    alarm=np.zeros(hi - lo, dtype=np.bool_),
                    shape_alarm=np.zeros(hi - lo, dtype=np.bool_),
                )
            )
            lo = hi

    def lay(
        self, slots: IndexArray, means: FloatArray, ends: FloatArray, scores: FloatArray
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
        """The resonance's confidences on these windows, the laid scores, and whether each
        came shortly after a record of the ensemble (learning them).

        Windows are laid in the steps the ensemble scored them in, each slot's in order.
        """
        layer = self.layer
        near_record = np.zeros(scores.shape, dtype=np.bool_)
        if layer is None:
            return np.zeros_like(scores), scores, near_record
        shape = layer.over.update(slots, means, ends)
        laid = np.empty_like(scores)
        for at in layer.steps(slots):
            laid[at] = layer.lay(slots[at], scores[at], shape[at])
            near_record[at] = layer.corroborating(slots[at])
        return shape, laid, near_record


class WindowedEnsemble:
    """Averages points per slot over fixed windows and scores closed windows in bulk.

    Slots are small integers (one per device and field); a point later than its slot's open
    window closes it; a point earlier than the open window (a late reading) is counted in
    it, so nothing is learned out of order. ``material`` is the smallest change of level
    worth an alarm, per field, for slot ``device * len(material) + field``. Buffers given
    one ``shared`` ensemble are scored together (:class:`SharedEnsemble`).

    >>> windows = WindowedEnsemble(PatternSettings(window_s=10.0, warmup=5))
    >>> _ = windows.add(np.array([0, 0, 0]), np.array([1.0, 4.0, 12.0]), np.array([2.0, 4.0, 6.0]))
    >>> verdicts = windows.score()
    >>> verdicts.ts.tolist(), verdicts.values.tolist(), verdicts.count.tolist()
    ([10.0], [3.0], [2.0])
    """

    def __init__(
        self,
        settings: PatternSettings | None = None,
        material: FloatArray | None = None,
        shared: SharedEnsemble | None = None,
    ) -> None:
        self.settings = settings or PatternSettings()
        self.material = np.zeros(1) if material is None else np.asarray(material, dtype=float)
        self.shared = shared or SharedEnsemble(self.settings)
        self.shared.buffers.append(self)
        self.member_names = self.shared.member_names
        self._open = np.zeros(0)
        self._sum = np.zeros(0)
        self._count = np.zeros(0)
        self._seq = np.zeros(0)
        #: The shared ensemble's slot of each of this buffer's slots.
        self._shared_slots = np.zeros(0, dtype=np.intp)
        self._pending = _Pending()
        self._scored: list[WindowVerdicts] = []

    @property
    def pending(self) -> int:
        """Closed windows waiting to be scored."""
        return self._pending.size

    def _reserve(self, size: int) -> None:
        if self._open.shape[0] >= size:
            return
        extra = max(size, 2 * self._open.shape[0], 16) - self._open.shape[0]
        self._open = np.concatenate([self._open, np.full(extra, np.nan)])
        self._sum = np.concatenate([self._sum, np.zeros(extra)])
        self._count = np.concatenate([self._count, np.zeros(extra)])
        self._seq = np.concatenate([self._seq, np.full(extra, np.nan)])

    def _allot(self, size: int) -> None:
        """Give slots ``0 .. size - 1`` their own slots of the shared ensemble."""
        have = self._shared_slots.size
        if have < size:
            fresh = self.shared.allot(size - have)
            self._shared_slots = np.concatenate([self._shared_slots, fresh])

    def add(
        self,
        slots: IndexArray,
        ts: FloatArray,
        values: FloatArray,
        seq: FloatArray | None = None,
        now: float = 0.0,
    ) -> int:
        """Fold points into their slots' windows; returns how many windows they closed.

        Non-finite values are skipped. ``now`` (wall clock) starts the buffer's delay.
        """
        keep = np.isfinite(values) & np.isfinite(ts)
        if not keep.all():
            slots, ts, values = slots[keep], ts[keep], values[keep]
            seq = None if seq is None else seq[keep]
        seq = np.full(slots.size, np.nan) if seq is None else seq.astype(np.float64)
        if slots.size == 0:
            return 0
        top = int(slots.max()) + 1
        self._reserve(top)
        self._allot(top)
        window = np.floor(ts / self.settings.window_s)
        current = self._open[slots]
        window = np.where(np.isnan(current) | (window >= current), window, current)
        if _in_order(slots, window):  # one device's upload, field by field: nothing to sort
            s, w, v, q = slots, window, values, seq
        else:
            order = np.lexsort((window, slots))
            s, w, v, q = slots[order], window[order], values[order], seq[order]
        starts = np.flatnonzero(group_starts(s) | np.r_[True, w[1:] != w[:-1]])
        g_slot, g_window = s[starts], w[starts]
        g_sum = np.add.reduceat(v, starts)
        g_count = np.diff(np.append(starts, s.size)).astype(np.float64)
        g_seq = np.fmax.reduceat(q, starts)
        # A group in a slot's open window takes over what that window had gathered so far;
        # windows never go back, so only a slot's first group can be in its open window.
        same = g_window == self._open[g_slot]
        g_sum[same] += self._sum[g_slot[same]]
        g_count[same] += self._count[g_slot[same]]
        g_seq[same] = np.fmax(g_seq[same], self._seq[g_slot[same]])
        # Open windows that no group continues close as they stand, before any newer one.
        first = group_starts(g_slot)
        ended = g_slot[first & ~same]
        ended = ended[self._count[ended] > 0]
        last = group_ends(g_slot)
        closing = ~last
        parts = (
            np.concatenate([ended, g_slot[closing]]),
            np.concatenate([self._open[ended], g_window[closing]]),
            np.concatenate([self._sum[ended], g_sum[closing]]),
            np.concatenate([self._count[ended], g_count[closing]]),
            np.concatenate([self._seq[ended], g_seq[closing]]),
        )
        open_slots = g_slot[last]
        self._open[open_slots] = g_window[last]
        self._sum[open_slots] = g_sum[last]
        self._count[open_slots] = g_count[last]
        self._seq[open_slots] = g_seq[last]
        closed = int(parts[0].size)
        if closed:
            self._pending.parts.append(parts)
            self._pending.size += closed
            if self._pending.since is None:
                self._pending.since = now
        return closed

    def close(self, now: float = 0.0) -> int:
        """Close every open window (the end of a stored series); returns how many closed."""
        slots = np.flatnonzero(self._count > 0)
        if slots.size:
            parts = (
                slots,
                self._open[slots],
                self._sum[slots],
                self._count[slots],
                self._seq[slots],
            )
            self._pending.parts.append(parts)
            self._pending.size += int(slots.size)
            if self._pending.since is None:
                self._pending.since = now
            # The next point of these slots opens a later window, never this one again.
            self._sum[slots] = 0.0
            self._count[slots] = 0.0
            self._seq[slots] = np.nan
        return int(slots.size)

    def due(self, now: float) -> bool:
        """Whether the buffer should be scored now: full enough, or waited long enough."""
        pending = self._pending
        if pending.size == 0 or pending.since is None:
            return False
        return (
            pending.size >= self.settings.max_pending
            or now - pending.since >= self.settings.max_delay_s
        )

    @property
    def scored(self) -> int:
        """Windows scored with the shared ensemble, waiting for :meth:`score` to hand over."""
        return sum(len(v) for v in self._scored)

    def score(self) -> WindowVerdicts:
        """Score and learn every waiting window, each slot's in time order.

        The shared ensemble scores the other buffers' waiting windows in the same steps;
        they keep those verdicts until their own :meth:`score` hands them over.
        """
        if self._pending.size:
            self.shared.score()
        scored, self._scored = self._scored, []
        if not scored:
            return _empty_verdicts(len(self.member_names))
        if len(scored) == 1:
            return scored[0]
        return WindowVerdicts(
            **{
                name: np.concatenate([getattr(v, name) for v in scored])
                for name in WindowVerdicts.__dataclass_fields__
            }
        )

    def shared_slots(self, slots: IndexArray) -> IndexArray:
        """The shared ensemble's slots of these slots of the buffer."""
        result: IndexArray = self._shared_slots[slots]
        return result

    def take_pending(self) -> tuple[IndexArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """Hand over the waiting windows: slots, window numbers, sums, counts, last seqs."""
        pending, self._pending = self._pending, _Pending()
        slots, window, total, count, seq = (
            np.concatenate(column) for column in zip(*pending.parts, strict=True)
        )
        return slots.astype(np.intp), window, total, count, seq

    def keep(self, verdicts: WindowVerdicts) -> None:
        """Take the shared ensemble's verdicts on this buffer's windows and set their alarms."""
        settings = self.settings
        change = np.abs(verdicts.values - verdicts.expected)
        material = change >= self.material[verdicts.slots % self.material.size]
        alarm = (
            (verdicts.scores >= settings.threshold)
            & (verdicts.surprises.max(axis=1, initial=0.0) >= settings.min_sigmas)
            & material
        )
        shape_alarm = np.zeros_like(alarm)
        if settings.shape_threshold is not None:
            new_shape = (verdicts.shape > 0.0) & (verdicts.laid >= settings.shape_threshold)
            shape_alarm = new_shape & material & ~alarm
        self._scored.append(replace(verdicts, alarm=alarm | shape_alarm, shape_alarm=shape_alarm))


def score_series(
    ts: FloatArray, values: FloatArray, settings: PatternSettings | None = None
) -> WindowVerdicts:
    """Score a whole stored series of one device's field in batch, as the live detector would.

    ``ts`` (Unix seconds) and ``values`` in any order; they are taken in time order, and the
    open window at the end is scored as if it had closed.

    >>> rng = np.random.default_rng(2)
    >>> ts = np.arange(3000.0)
    >>> values = 20.0 + rng.normal(0.0, 0.5, ts.size)
    >>> values[2500:] += 6.0
    >>> verdicts = score_series(ts, values)
    >>> alarms = verdicts.ts[verdicts.alarm]
    >>> bool(alarms.size > 0 and alarms.min() >= 2500.0 and alarms.min() <= 2520.0)
    True
    """
    settings = settings or PatternSettings()
    order = np.argsort(ts, kind="stable")
    windows = WindowedEnsemble(settings)
    windows.add(
        np.zeros(order.size, dtype=np.intp),
        np.asarray(ts, dtype=np.float64)[order],
        np.asarray(values, dtype=np.float64)[order],
    )
    windows.close()
    return windows.score()


def _material(spec: FieldSpec, share: float) -> float:
    """The smallest change of a field's level worth an alarm: a share of its band.

    Whole numbers (counts, lanes) step by one, so a step of less than one is never material.
    """
    band = spec.normal or spec.range
    change = share * (band[1] - band[0]) if band else 0.0
    return max(change, 1.0) if spec.type is FieldType.INTEGER else change


@dataclass(kw_only=True)
class _StreamState:
    specs: tuple[FieldSpec, ...]
    columns: tuple[str, ...]
    windows: WindowedEnsemble
    episodes: Episodes
    devices: SlotIndex = field(default_factory=SlotIndex)


class PatternAnomalyDetector(Detector):
    """The univariate ensemble per (device, numeric field), on windowed averages.

    Alerts once per episode when a window is the most surprising its stream has shown
    (ensemble score at least ``threshold``) and its most surprised member is at least
    ``min_sigmas`` surprised; the evidence names every member's part.
    """

    name = "pattern_anomaly"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        settings: PatternSettings | None = None,
    ) -> None:
        self.settings = settings or PatternSettings()
        self._places = Places(catalog, device)
        self._states: dict[str, _StreamState] = {}
        rearm_s = self.settings.rearm_windows * self.settings.window_s
        # One ensemble for every stream: their windows are scored in the same vector steps.
        shared = SharedEnsemble(self.settings)
        for stream in catalog.streams:
            specs = tuple(f for f in stream.numeric_fields if f.type is not FieldType.BOOLEAN)
            if not specs or not stream.baseline_anomalies:
                continue
            material = np.array([_material(f, self.settings.material_share) for f in specs])
            self._states[stream.name] = _StreamState(
                specs=specs,
                columns=tuple(f.name for f in specs),
                windows=WindowedEnsemble(self.settings, material, shared),
                episodes=Episodes(conditions=len(specs), rearm_s=rearm_s),
            )

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Fold the batch into its windows; score the closed windows when the stream's are due.

        Every stream's closed windows are scored then, in the same steps: for the others,
        sooner than they would have been, never later.
        """
        state = self._states.get(batch.stream)
        if state is None:
            return []
        if len(batch):
            k = len(state.columns)
            ids = batch.device_ids
            if ids.count(ids[0]) == len(ids):  # one device's upload: look it up once
                devices = np.repeat(state.devices.lookup(ids[:1]), len(ids))
            else:
                devices = state.devices.lookup(ids)
            # Field by field, so that one device's upload in time order needs no sorting.
            values = np.full((k, len(batch)), np.nan)
            for j, name in enumerate(state.columns):
                if name in batch.fields:
                    values[j] = batch.values[:, batch.fields.index(name)]
            slots = (devices[None, :] * k + np.arange(k)[:, None]).ravel()
            state.windows.add(
                slots,
                np.tile(batch.ts, k),
                values.ravel(),
                np.tile(batch.seq.astype(np.float64), k),
                now,
            )
        return self._score_all(now) if state.windows.due(now) else []

    def tick(self, now: float) -> list[Alert]:
        """Score every stream's closed windows if some stream's have waited long enough."""
        if any(state.windows.due(now) for state in self._states.values()):
            return self._score_all(now)
        return []

    def _score_all(self, now: float) -> list[Alert]:
        alerts: list[Alert] = []
        for stream, state in self._states.items():
            # The first buffer with windows waiting scores them all; each hands over its own.
            if state.windows.pending or state.windows.scored:
                alerts.extend(self._score(stream, state, now))
        return alerts

    def _score(self, stream: str, state: _StreamState, now: float) -> list[Alert]:
        verdicts = state.windows.score()
        flagged = np.flatnonzero(verdicts.alarm)
        if flagged.size == 0:
            return []
        k = len(state.columns)
        slots = verdicts.slots[flagged]
        fresh = state.episodes.open(slots // k, slots % k, verdicts.ts[flagged])
        return [self._alert(stream, state, verdicts, int(i), now) for i in flagged[fresh].tolist()]

    def _alert(
        self, stream: str, state: _StreamState, verdicts: WindowVerdicts, i: int, now: float
    ) -> Alert:
        k = len(state.columns)
        slot = int(verdicts.slots[i])
        device_id = state.devices.ids[slot // k]
        spec = state.specs[slot % k]
        place = self._places.of(stream, device_id)
        value, expected = float(verdicts.values[i]), float(verdicts.expected[i])
        spread = float(verdicts.spread[i])
        window_s = self.settings.window_s
        members = {
            name: {
                "sigmas": number(min(verdicts.surprises[i, m], MAX_SIGMAS)),
                "share_of_record": number(verdicts.contributions[i, m]),
            }
            for m, name in enumerate(state.windows.member_names)
        }
        seq = number(verdicts.seq[i])
        unit = f" {spec.unit}" if spec.unit else ""
        end = datetime.fromtimestamp(float(verdicts.ts[i]), UTC).strftime("%H:%M:%S UTC")
        seen = (
            f"{label(spec)} at {place.name} averaged {figure(value)}{unit} over the "
            f"{figure(window_s)} s to {end} ({int(verdicts.count[i])} readings)"
        )
        if verdicts.shape_alarm[i]:
            confidence = float(verdicts.shape[i])
            title = (
                f"Unusual pattern: {label(spec).lower()} at {place.name} moves in a way it "
                f"never has (now {quantity(value, spec)}, usually about "
                f"{quantity(expected, spec)})"
            )
            explanation = explain(
                seen=seen,
                against=(
                    "and the shape of its recent windows fits none of the shapes it has "
                    f"learned (usual level about {figure(expected)}{unit})"
                ),
                sure=(
                    f"Fairly sure: the shape is new with confidence {figure(confidence, 2)} "
                    "(0 to 1)"
                    + (
                        ", just after the most surprising window yet"
                        if verdicts.near_record[i]
                        else ""
                    )
                    + "; a new shape can also be a legitimate change of routine"
                ),
                detector=self.name,
                score=float(verdicts.laid[i]),
            )
        else:
            names = state.windows.member_names
            direction = "high" if value > expected else "low"
            leaders = np.argsort(-verdicts.contributions[i])[:2]
            title = (
                f"Unusual pattern: {direction} {label(spec).lower()} {quantity(value, spec)} "
                f"at {place.name} (expected about {quantity(expected, spec)}; "
                f"{meaning(names[int(leaders[0])])})"
            )
            top = min(float(verdicts.surprises[i].max()), MAX_SIGMAS)
            explanation = explain(
                seen=seen,
                against=(
                    f"against a learned level of about {figure(expected)}{unit} (typical "
                    f"spread {figure(spread, 3)}{unit}); the strongest signs: "
                    + " and ".join(
                        f"{meaning(names[int(m)])} "
                        f"({figure(min(float(verdicts.surprises[i, m]), MAX_SIGMAS), 1)} "
                        "sigmas)"
                        for m in leaders
                    )
                ),
                sure=(
                    f"Fairly sure: the most unusual window this {spec.name.replace('_', ' ')} "
                    f"has shown since learning began, {figure(top, 1)} sigmas for its most "
                    "surprised test, but a learned pattern can miss a legitimate change"
                ),
                detector=self.name,
                score=float(verdicts.scores[i]),
            )
        return alert(
            detector=self.name,
            # Its own kind, so that operators' marks on new shapes can be told apart.
            kind="pattern_shape" if verdicts.shape_alarm[i] else "pattern_anomaly",
            severity=Severity.MEDIUM,
            title=title,
            explanation=explanation,
            stream=stream,
            device_id=device_id,
            place=place,
            ts=float(verdicts.ts[i]),
            now=now,
            evidence={
                "field": spec.name,
                "unit": spec.unit,
                "window_s": window_s,
                "value": number(value),
                "baseline_mean": number(expected),
                "baseline_scale": number(spread),
                "score": number(verdicts.scores[i]),
                "threshold": self.settings.threshold,
                "min_sigmas": self.settings.min_sigmas,
                "members": members,
                "shape": {
                    "alarm": bool(verdicts.shape_alarm[i]),
                    "confidence": number(verdicts.shape[i]),
                    "laid_score": number(verdicts.laid[i]),
                    "after_a_record": bool(verdicts.near_record[i]),
                    "threshold": self.settings.shape_threshold,
                },
                "readings": [
                    {
                        "seq": int(seq) if seq is not None else None,
                        "ts": float(verdicts.ts[i]),
                        "count": int(verdicts.count[i]),
                        "values": {spec.name: number(value)},
                    }
                ],
            },
        )

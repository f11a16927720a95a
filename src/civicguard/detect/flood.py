"""Floods: a device sending far more readings than its stream's report interval allows."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from civicguard.catalog.model import Catalog
from civicguard.detect._support import (
    DEFAULT_REARM_S,
    Episodes,
    FloatArray,
    Places,
    explain,
    figure,
    group_starts,
    rank_in_group,
    reading,
    reading_alert,
)
from civicguard.detect.base import Detector, SlotIndex, grow
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(kw_only=True)
class _StreamState:
    interval_s: float
    window_s: float
    #: A window holding this many readings is a flood.
    limit: int
    episodes: Episodes
    #: Reading times and seqs of each device's last ``limit - 1`` readings, oldest first.
    history_ts: FloatArray
    history_seq: FloatArray
    slots: SlotIndex = field(default_factory=SlotIndex)


class FloodDetector(Detector):
    """Alerts when a device's readings within a sliding window exceed ``factor`` times its rate.

    The window is ``window_s`` (at least two report intervals); counting ``limit`` readings in
    it, with ``limit = floor(factor * window / interval) + 1``, is a flood. Time is the readings'
    own time, so a gateway that uploads a buffered backlog in one request is not a flood.
    """

    name = "flood"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        factor: float = 5.0,
        window_s: float = 2.0,
        rearm_s: float = DEFAULT_REARM_S,
    ) -> None:
        self._places = Places(catalog, device)
        self._states: dict[str, _StreamState] = {}
        for stream in catalog.streams:
            interval = stream.report_interval_s
            window = max(window_s, 2.0 * interval)
            limit = math.floor(factor * window / interval) + 1
            self._states[stream.name] = _StreamState(
                interval_s=interval,
                window_s=window,
                limit=limit,
                episodes=Episodes(conditions=1, rearm_s=rearm_s),
                history_ts=np.full((0, limit - 1), -np.inf),
                history_seq=np.full((0, limit - 1), -1.0),
            )

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Slide each device's window over its new readings; flag windows holding too many."""
        state = self._states.get(batch.stream)
        if state is None or len(batch) == 0:
            return []
        h = state.limit - 1
        slots = state.slots.lookup(batch.device_ids)
        state.history_ts = grow(state.history_ts, len(state.slots), -np.inf)
        state.history_seq = grow(state.history_seq, len(state.slots), -1.0)
        # Lay each device out as one block: its remembered readings, then this batch's.
        order = np.lexsort((batch.ts, slots))
        s = slots[order]
        starts = group_starts(s)
        devices = s[starts]
        counts = np.diff(np.append(np.flatnonzero(starts), len(s)))
        block = h + counts
        begin = np.concatenate(([0], np.cumsum(block)[:-1]))
        total = int(block.sum())
        ts = np.empty(total)
        seq = np.empty(total)
        origin = np.full(total, -1, dtype=np.intp)
        owner = np.repeat(np.arange(len(devices)), block)
        remembered = (begin[:, None] + np.arange(h)).reshape(-1)
        ts[remembered] = state.history_ts[devices].reshape(-1)
        seq[remembered] = state.history_seq[devices].reshape(-1)
        fresh_at = np.repeat(begin, counts) + h + rank_in_group(s)
        ts[fresh_at] = batch.ts[order]
        seq[fresh_at] = batch.seq[order]
        origin[fresh_at] = order
        # A late reading may be older than remembered ones: keep every block in time order.
        resort = np.lexsort((ts, owner))
        ts, seq, origin = ts[resort], seq[resort], origin[resort]
        position = np.arange(total) - np.repeat(begin, block)
        span = np.full(total, np.inf)
        later = position >= h
        span[later] = ts[later] - ts[np.flatnonzero(later) - h]
        flooded = (span <= state.window_s) & (origin >= 0)
        tail = (begin + block - h)[:, None] + np.arange(h)
        state.history_ts[devices] = ts[tail]
        state.history_seq[devices] = seq[tail]
        hits = np.flatnonzero(flooded)
        if len(hits) == 0:
            return []
        fresh = state.episodes.open(slots[origin[hits]], np.zeros(len(hits), np.intp), ts[hits])
        alerts = []
        for p in hits[fresh].tolist():
            first_ts, first_seq = float(ts[p - h]), float(seq[p - h])
            alerts.append(self._alert(state, batch, int(origin[p]), (first_ts, first_seq), now=now))
        return alerts

    def _alert(
        self,
        state: _StreamState,
        batch: ReadingBatch,
        row: int,
        first: tuple[float, float],
        *,
        now: float,
    ) -> Alert:
        device_id = batch.device_ids[row]
        place = self._places.of(batch.stream, device_id, batch.cells[row])
        first_ts, first_seq = first
        span = float(batch.ts[row]) - first_ts
        rate = state.limit / max(span, 1e-3)
        expected = 1.0 / state.interval_s
        title = (
            f"Message flood from {place.name}: {state.limit} readings in {span:.1f} s "
            f"({rate:.0f}/s, expected {expected:g}/s)"
        )
        explanation = explain(
            seen=(
                f"{place.name} sent {state.limit} readings within {figure(span, 1)} s, "
                f"about {figure(rate, 0)} a second"
            ),
            against=(
                f"while its stream reports once every {figure(state.interval_s)} s and "
                f"{state.limit} readings within a {figure(state.window_s)} s window count as a "
                "flood"
            ),
            sure=(
                f"Sure: {figure(rate / expected, 1)} times the expected rate, counted on the "
                "readings' own timestamps so a buffered upload does not count"
            ),
            detector=self.name,
            score=rate / expected,
        )
        return reading_alert(
            self.name,
            batch,
            row,
            place,
            now,
            kind="message_flood",
            severity=Severity.HIGH,
            title=title,
            explanation=explanation,
            evidence={
                "count": state.limit,
                "window_s": state.window_s,
                "span_s": span,
                "report_interval_s": state.interval_s,
                "threshold_per_s": state.limit / state.window_s,
                "score": rate / expected,
                "readings": [
                    {"seq": int(first_seq), "ts": first_ts, "values": {}},
                    reading(batch, row),
                ],
            },
        )

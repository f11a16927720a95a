"""Doors held open: a door left open longer than its catalog limit, one alert per opening.

The limit is the stream's ``held_open_after``, or a stricter one set by a zone the door stands
in. Batches are scored on the doors' own clocks (reading times). Between batches, :meth:`tick`
measures from when the opening was received, so that a door still open alerts on time even
when no new reading of it arrives (a door controller may report only changes): up to the
newest receipt time processed while readings of any stream keep coming through, so that a
close still waiting in a backlog is not missed, and up to the platform's clock once nothing
has come through for longer than the door's limit (see
:class:`~civicguard.detect._support.Horizon`, which silence measures by too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from civicguard.catalog.model import Catalog, ZoneKind
from civicguard.detect._support import (
    BoolArray,
    FloatArray,
    Horizon,
    IndexArray,
    Places,
    alert,
    explain,
    figure,
    group_ends,
    group_starts,
    number,
    reading,
)
from civicguard.detect.base import Detector, SlotIndex, grow
from civicguard.detect.model import Alert, Severity
from civicguard.detect.zones import ZoneMap
from civicguard.ingest.model import Device, ReadingBatch

#: The boolean field that says a door is open (the catalog loader insists on it).
OPEN_FIELD = "open"


@dataclass(kw_only=True)
class _Doors:
    """Per-door state of one stream, in arrays indexed by slot."""

    limit_s: float
    slots: SlotIndex = field(default_factory=SlotIndex)
    limit: FloatArray = field(default_factory=lambda: np.empty(0))
    #: Where each door's limit comes from: the stream, or a zone's name.
    source: list[str] = field(default_factory=list)
    restricted: list[bool] = field(default_factory=list)
    last_ts: FloatArray = field(default_factory=lambda: np.empty(0))
    is_open: BoolArray = field(default_factory=lambda: np.empty(0, dtype=np.bool_))
    #: The opening's reading time (the door's clock) and receipt time (the platform's clock).
    since_ts: FloatArray = field(default_factory=lambda: np.empty(0))
    since_rx: FloatArray = field(default_factory=lambda: np.empty(0))
    since_seq: FloatArray = field(default_factory=lambda: np.empty(0))
    alerted: BoolArray = field(default_factory=lambda: np.empty(0, dtype=np.bool_))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Held:
    """One door found held open: everything its alert quotes."""

    stream: str
    slot: int
    held_s: float
    ts: float
    current: dict[str, object] | None


class DoorHeldOpenDetector(Detector):
    """Alerts once per opening when a door stays open past its limit; closing re-arms it."""

    name = "door_held_open"

    def __init__(self, catalog: Catalog, device: Callable[[str], Device | None]) -> None:
        self._places = Places(catalog, device)
        self._zones = ZoneMap(catalog, device)
        self._doors = {
            s.name: _Doors(limit_s=s.held_open_after_s)
            for s in catalog.streams
            if s.held_open_after_s is not None
        }
        self._horizon = Horizon()

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Follow each door's openings through the batch; alert on those held too long."""
        # Readings of every stream show how far the platform has got, not the doors' alone.
        self._horizon.note(batch.received_at, now)
        doors = self._doors.get(batch.stream)
        if doors is None or len(batch) == 0 or OPEN_FIELD not in batch.fields:
            return []
        opened = batch.column(OPEN_FIELD)
        rows = np.flatnonzero(np.isfinite(opened))
        if len(rows) == 0:
            return []
        slots = doors.slots.lookup([batch.device_ids[i] for i in rows.tolist()])
        self._grow(doors)
        order = np.lexsort((batch.ts[rows], slots))
        rows, slots = rows[order], slots[order]
        fresh = batch.ts[rows] >= doors.last_ts[slots]  # older readings came too late to count
        rows, slots = rows[fresh], slots[fresh]
        if len(rows) == 0:
            return []
        held = self._follow(doors, batch, rows, slots)
        return [self._alert(doors, h, now, batch.stream) for h in held]

    def _follow(
        self, doors: _Doors, batch: ReadingBatch, rows: IndexArray, slots: IndexArray
    ) -> list[_Held]:
        """Update the doors' state from time-ordered ``rows``; the openings now held too long."""
        n = len(rows)
        ts = batch.ts[rows]
        is_open = batch.column(OPEN_FIELD)[rows] > 0.5
        first = group_starts(slots)
        was_open = np.empty(n, dtype=np.bool_)
        was_open[1:] = is_open[:-1]
        was_open[first] = doors.is_open[slots[first]]
        opening = is_open & ~was_open
        carried = first & is_open & ~opening  # open since an earlier batch
        # Each row points at the row that set its episode: an opening, a close, or a carry-over.
        marks = opening | carried | ~is_open | first
        anchor = np.maximum.accumulate(np.where(marks, np.arange(n), 0))
        since_ts = np.where(carried, doors.since_ts[slots], ts)[anchor]
        since_rx = np.where(carried, doors.since_rx[slots], batch.received_at[rows])[anchor]
        since_seq = np.where(carried, doors.since_seq[slots], batch.seq[rows])[anchor]
        done = np.zeros(n, dtype=np.bool_)
        done[carried] = doors.alerted[slots[carried]]
        done = done[anchor]
        over = is_open & ~done & (ts - since_ts >= doors.limit[slots])
        hits = np.flatnonzero(over)
        _, firsts = np.unique(anchor[hits], return_index=True)
        hits = hits[firsts]
        alerted = done.copy()
        alerted[np.isin(anchor, anchor[hits])] = True
        last = group_ends(slots)
        s = slots[last]
        doors.last_ts[s] = ts[last]
        doors.is_open[s] = is_open[last]
        doors.since_ts[s] = since_ts[last]
        doors.since_rx[s] = since_rx[last]
        doors.since_seq[s] = since_seq[last]
        doors.alerted[s] = alerted[last] & is_open[last]
        return [
            _Held(
                stream=batch.stream,
                slot=int(slots[i]),
                held_s=float(ts[i] - since_ts[i]),
                ts=float(ts[i]),
                current=reading(batch, int(rows[i])),
            )
            for i in hits.tolist()
        ]

    def tick(self, now: float) -> list[Alert]:
        """Alert on doors still open past their limit, up to what the platform has processed."""
        alerts: list[Alert] = []
        for stream, doors in self._doors.items():
            n = len(doors.slots)
            held = self._horizon.at(now, doors.limit[:n]) - doors.since_rx[:n]
            due = held >= doors.limit[:n]
            late = np.flatnonzero(doors.is_open[:n] & ~doors.alerted[:n] & due)
            doors.alerted[late] = True
            for slot in late.tolist():
                found = _Held(
                    stream=stream,
                    slot=slot,
                    held_s=float(held[slot]),
                    ts=float(doors.last_ts[slot]),
                    current=None,
                )
                alerts.append(self._alert(doors, found, now, stream))
        return alerts

    def _grow(self, doors: _Doors) -> None:
        size = len(doors.slots)
        known = len(doors.source)
        if size == known:
            return
        doors.limit = grow(doors.limit, size, doors.limit_s)
        doors.last_ts = grow(doors.last_ts, size, -np.inf)
        doors.is_open = grow(doors.is_open, size, False)
        doors.since_ts = grow(doors.since_ts, size, np.nan)
        doors.since_rx = grow(doors.since_rx, size, np.nan)
        doors.since_seq = grow(doors.since_seq, size, -1.0)
        doors.alerted = grow(doors.alerted, size, False)
        for slot in range(known, size):
            zones = [self._zones.areas[z].zone for z in self._zones.of(doors.slots.ids[slot])]
            limit, source = doors.limit_s, "stream"
            for zone in zones:
                if zone.held_open_after_s is not None and zone.held_open_after_s < limit:
                    limit, source = zone.held_open_after_s, zone.name
            doors.limit[slot] = limit
            doors.source.append(source)
            doors.restricted.append(any(z.kind is ZoneKind.RESTRICTED for z in zones))

    def _alert(self, doors: _Doors, held: _Held, now: float, stream: str) -> Alert:
        slot = held.slot
        device_id = doors.slots.ids[slot]
        place = self._places.of(stream, device_id)
        limit = float(doors.limit[slot])
        source = doors.source[slot]
        restricted = doors.restricted[slot]
        opening = {
            "seq": int(doors.since_seq[slot]),
            "ts": number(doors.since_ts[slot]),
            "values": {OPEN_FIELD: 1.0},
        }
        readings = [opening] if held.current is None else [opening, held.current]
        whose = "the catalog's limit for the stream" if source == "stream" else f"zone {source}"
        return alert(
            detector=self.name,
            kind="door_held_open",
            severity=Severity.HIGH if restricted else Severity.MEDIUM,
            title=f"Door held open for {held.held_s:.0f} s at {place.name}",
            explanation=explain(
                seen=(
                    f"{place.name} has been open for {figure(held.held_s, 0)} s since it "
                    f"opened (seq {opening['seq']})"
                ),
                against=(
                    f"longer than the {figure(limit)} s a door may stay open ({whose})"
                    + ("; the door leads into a restricted zone" if restricted else "")
                ),
                sure=(
                    "Sure that it is open: the door itself reports it"
                    if held.current is not None
                    else "Open by its last report; no reading has said it closed since"
                ),
                detector=self.name,
                score=held.held_s / limit,
            ),
            stream=stream,
            device_id=device_id,
            place=place,
            ts=held.ts,
            now=now,
            evidence={
                "held_open_s": number(held.held_s),
                "limit_s": limit,
                "limit_from": source,
                "restricted_zone": restricted,
                "opened_at": number(doors.since_ts[slot]),
                "score": number(held.held_s / limit),
                "readings": readings,
            },
        )

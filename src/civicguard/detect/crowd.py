"""Crowds in public spaces: people per zone, summed over its counters, against its capacity.

:class:`ZoneHeadcount` keeps each counter's latest count and a slow baseline of it, and sums
the counters standing in each public space; :class:`CrowdOverCapacityDetector` alerts once per
episode when a zone holds more people than its capacity (declared, or area times the density
limit of :data:`~civicguard.detect.zones.DEFAULT_DENSITY_LIMIT`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import h3
import numpy as np
import numpy.typing as npt

from civicguard.catalog.model import Catalog
from civicguard.detect._support import (
    BoolArray,
    FloatArray,
    IndexArray,
    Place,
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
from civicguard.detect.zones import DEFAULT_DENSITY_LIMIT, ZoneArea, ZoneMap
from civicguard.ingest.model import Device, ReadingBatch

#: Streams that count people, and the field holding the count.
HEADCOUNT_FIELDS = {"crowd.counter": "people"}
#: Time constant (s) of a counter's slow baseline: what it usually counts at this time.
BASELINE_S = 600.0
#: An over-capacity episode ends when the zone falls under this share of its capacity.
CLEAR_FRACTION = 0.95


@dataclass(frozen=True, slots=True, kw_only=True)
class Gauge:
    """A public space with a capacity, as a crowd detector watches it."""

    index: int
    area: ZoneArea
    capacity: int
    place: Place


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """A batch's counts in time order, with every gauge's total right after each of them."""

    ts: FloatArray
    slots: IndexArray
    values: FloatArray
    #: Row of the batch each entry came from.
    rows: IndexArray
    #: (entries, gauges): people in each gauge once the entry is counted.
    totals: npt.NDArray[np.float64]
    #: Totals, and each counter's count, before the batch.
    before: FloatArray
    people: FloatArray
    #: Gauges that gained a counter in this batch: their sum jumped for that reason alone.
    joined: BoolArray

    @staticmethod
    def empty(before: FloatArray, joined: BoolArray, people: FloatArray) -> Timeline:
        """A timeline with no entries."""
        return Timeline(
            ts=np.empty(0),
            slots=np.empty(0, dtype=np.intp),
            values=np.empty(0),
            rows=np.empty(0, dtype=np.intp),
            totals=np.empty((0, len(before))),
            before=before,
            people=people.copy(),
            joined=joined,
        )

    def __len__(self) -> int:
        return len(self.ts)

    def totals_at(self, when: FloatArray) -> npt.NDArray[np.float64]:
        """(instants, gauges): people in each gauge at each instant of ``when``."""
        if not len(self):
            return np.repeat(self.before[None, :], len(when), axis=0)
        index = np.searchsorted(self.ts, when, side="right") - 1
        known = self.totals[np.maximum(index, 0)]
        return np.where((index >= 0)[:, None], known, self.before[None, :])

    def entry_at(self, when: float) -> int:
        """The last entry at or before ``when``; -1 if none."""
        return int(np.searchsorted(self.ts, when, side="right")) - 1

    def count_of(self, slot: int, entry: int) -> float:
        """Counter ``slot``'s count as of entry ``entry`` (its last one at or before it)."""
        mine = np.flatnonzero(self.slots[: entry + 1] == slot)
        return float(self.values[mine[-1]]) if len(mine) else float(self.people[slot])


class ZoneHeadcount:
    """People per public space, summed over the latest count of each counter inside it."""

    def __init__(self, catalog: Catalog, device: Callable[[str], Device | None]) -> None:
        self._zones = ZoneMap(catalog, device)
        gauges: list[Gauge] = []
        for area in self._zones.areas:
            if area.capacity is not None:
                place = _zone_place(area, catalog)
                gauges.append(
                    Gauge(index=len(gauges), area=area, capacity=area.capacity, place=place)
                )
        self.gauges = tuple(gauges)
        self._gauge_of_zone = {g.area.zone.name: g.index for g in self.gauges}
        self.fields = {
            stream: name
            for stream, name in HEADCOUNT_FIELDS.items()
            if self.gauges and catalog.has_stream(stream)
        }
        self.slots = SlotIndex()
        self.people = np.empty(0)
        self.baseline = np.empty(0)
        self.last_ts = np.empty(0)
        #: (counter slot, gauge index) pairs: which counters each gauge sums.
        self.member_slot: IndexArray = np.empty(0, dtype=np.intp)
        self.member_gauge: IndexArray = np.empty(0, dtype=np.intp)
        self.capacity = np.array([g.capacity for g in self.gauges], dtype=np.float64)

    def update(self, batch: ReadingBatch) -> Timeline:
        """Take in a batch's counts, in time order; returns each gauge's total after each one."""
        joined = np.zeros(len(self.gauges), dtype=np.bool_)
        name = self.fields.get(batch.stream)
        before = self.totals()
        if name is None or len(batch) == 0 or name not in batch.fields:
            return Timeline.empty(before, joined, self.people)
        counts = batch.column(name)
        rows = np.flatnonzero(np.isfinite(counts))
        known = len(self.slots)
        slots = self.slots.lookup([batch.device_ids[i] for i in rows.tolist()])
        if len(self.slots) > known:
            self._join(known, len(self.slots), joined)
        people = self.people.copy()
        order = np.lexsort((slots, batch.ts[rows]))
        rows, slots = rows[order], slots[order]
        fresh = batch.ts[rows] >= self.last_ts[slots]  # older readings came too late to count
        rows, slots = rows[fresh], slots[fresh]
        ts, x = batch.ts[rows], counts[rows]
        # Each reading changes its gauges' totals by its difference from the counter's last one.
        by_slot = np.lexsort((ts, slots))
        earlier = np.empty(len(rows))
        earlier[by_slot[1:]] = x[by_slot[:-1]]
        firsts = by_slot[group_starts(slots[by_slot])]
        earlier[firsts] = people[slots[firsts]]
        weights = np.zeros((len(self.slots), len(self.gauges)))
        weights[self.member_slot, self.member_gauge] = 1.0
        steps = (x - earlier)[:, None] * weights[slots]
        totals = before[None, :] + np.cumsum(steps, axis=0)
        last = by_slot[group_ends(slots[by_slot])]
        self._remember(slots[last], ts[last], x[last])
        return Timeline(ts=ts, slots=slots, values=x, rows=rows, totals=totals, before=before,
                        people=people, joined=joined)  # fmt: skip

    def _remember(self, s: IndexArray, ts: FloatArray, x: FloatArray) -> None:
        """Each counter's newest count, and its slow baseline moved towards it."""
        first = ~np.isfinite(self.last_ts[s])
        dt = np.where(first, 0.0, ts - self.last_ts[s])
        weight = np.where(first, 1.0, -np.expm1(-dt / BASELINE_S))
        base = np.where(first, x, self.baseline[s])
        self.baseline[s] = base + weight * (x - base)
        self.people[s] = x
        self.last_ts[s] = ts

    def _join(self, known: int, size: int, joined: BoolArray) -> None:
        self.people = grow(self.people, size, 0.0)
        self.baseline = grow(self.baseline, size, 0.0)
        self.last_ts = grow(self.last_ts, size, -np.inf)
        pairs = [
            (slot, self._gauge_of_zone[self._zones.areas[z].zone.name])
            for slot in range(known, size)
            for z in self._zones.of(self.slots.ids[slot])
            if self._zones.areas[z].zone.name in self._gauge_of_zone
        ]
        if pairs:
            new_slots, new_gauges = np.array(pairs, dtype=np.intp).T
            self.member_slot = np.concatenate([self.member_slot, new_slots])
            self.member_gauge = np.concatenate([self.member_gauge, new_gauges])
            joined[new_gauges] = True

    def totals(self) -> FloatArray:
        """People in each gauge now (the latest count of each of its counters, summed)."""
        return np.bincount(
            self.member_gauge,
            weights=self.people[self.member_slot],
            minlength=len(self.gauges),
        ).astype(np.float64)

    def members(self, gauge: int) -> list[str]:
        """Ids of the counters a gauge sums."""
        return [self.slots.ids[s] for s in self.member_slot[self.member_gauge == gauge].tolist()]

    def counts(
        self, gauge: int, timeline: Timeline | None = None, entry: int = -1
    ) -> dict[str, float]:
        """Each counter's count in a gauge, by device id: now, or as of a timeline's entry."""
        mine = self.member_slot[self.member_gauge == gauge].tolist()
        if timeline is None or entry < 0:
            return {self.slots.ids[s]: float(self.people[s]) for s in mine}
        return {self.slots.ids[s]: timeline.count_of(s, entry) for s in mine}

    def driver(self, gauge: int) -> tuple[str, float]:
        """The counter of ``gauge`` furthest above its usual count, and by how many people."""
        mine = self.member_slot[self.member_gauge == gauge]
        rise = self.people[mine] - self.baseline[mine]
        best = int(np.argmax(rise))
        return self.slots.ids[int(mine[best])], float(rise[best])


def _zone_place(area: ZoneArea, catalog: Catalog) -> Place:
    """A zone as an alert places it: its centroid, in an H3 cell of the crowd stream."""
    ring = area.zone.polygon
    lat = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
    lon = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
    resolution = next(
        (catalog.stream(s).h3_resolution for s in HEADCOUNT_FIELDS if catalog.has_stream(s)), 9
    )
    return Place(
        name=area.zone.title,
        cell=str(h3.latlng_to_cell(lat, lon, resolution)),
        lat=lat,
        lon=lon,
    )


def density_text(people: float, area: ZoneArea) -> str:
    """People per square metre, as an explanation quotes it (empty for a zone without area)."""
    if area.area_m2 <= 0:
        return ""
    return f" ({figure(people / area.area_m2, 2)} people/m2 over {figure(area.area_m2, 0)} m2)"


class CrowdOverCapacityDetector(Detector):
    """Alerts when a public space holds more people than its capacity, once per episode."""

    name = "crowd_capacity"

    def __init__(self, catalog: Catalog, device: Callable[[str], Device | None]) -> None:
        self.headcount = ZoneHeadcount(catalog, device)
        self._over = np.zeros(len(self.headcount.gauges), dtype=np.bool_)

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Follow the zones' headcounts through the batch; alert on those that go over capacity."""
        if batch.stream not in self.headcount.fields or len(batch) == 0:
            return []
        timeline = self.headcount.update(batch)
        if not len(timeline):
            return []
        alerts: list[Alert] = []
        for g, capacity in enumerate(self.headcount.capacity.tolist()):
            people = timeline.totals[:, g]
            # +1 where the zone goes over, -1 where it is clear again; the latch follows them.
            clear = people < CLEAR_FRACTION * capacity
            event = np.where(people > capacity, 1, np.where(clear, -1, 0))
            last_event = np.maximum.accumulate(np.where(event != 0, np.arange(len(event)), -1))
            latched = np.where(last_event >= 0, event[last_event] > 0, self._over[g])
            before = np.concatenate([[self._over[g]], latched[:-1]])
            self._over[g] = bool(latched[-1])
            for i in np.flatnonzero((event > 0) & ~before).tolist():
                alerts.append(self._alert(g, timeline, i, batch, now))
        return alerts

    def _alert(
        self, gauge: int, timeline: Timeline, entry: int, batch: ReadingBatch, now: float
    ) -> Alert:
        g = self.headcount.gauges[gauge]
        people = float(timeline.totals[entry, gauge])
        driver, rise = self.headcount.driver(gauge)
        counts = self.headcount.counts(gauge, timeline, entry)
        tipping = {"device_id": batch.device_ids[int(timeline.rows[entry])],
                   **reading(batch, int(timeline.rows[entry]))}  # fmt: skip
        share = people / g.capacity
        declared = g.area.zone.capacity is not None
        limit = (
            f"its declared capacity of {g.capacity} people"
            if declared
            else (
                f"its capacity of {g.capacity} people ({figure(g.area.area_m2, 0)} m2 at "
                f"{figure(g.area.zone.density_limit or DEFAULT_DENSITY_LIMIT)} people/m2)"
            )
        )
        return alert(
            detector=self.name,
            kind="crowd_over_capacity",
            severity=Severity.CRITICAL if share >= 1.2 else Severity.HIGH,
            title=(
                f"{g.area.zone.title} over capacity: {people:.0f} people for {g.capacity} "
                f"({100 * share:.0f} %)"
            ),
            explanation=explain(
                seen=(
                    f"The {len(counts)} crowd counters of {g.area.zone.title} count "
                    f"{figure(people, 0)} people{density_text(people, g.area)}; {driver} rose "
                    f"most, {figure(rise, 0)} above its usual count"
                ),
                against=f"more than {limit}",
                sure="Sure of the sum as counted; each counter's own error adds up in it",
                detector=self.name,
                score=share,
            ),
            stream=next(iter(self.headcount.fields)),
            device_id=driver,
            place=g.place,
            ts=float(timeline.ts[entry]),
            now=now,
            evidence={
                "zone": g.area.zone.name,
                "people": people,
                "capacity": g.capacity,
                "capacity_declared": declared,
                "area_m2": number(g.area.area_m2),
                "density_per_m2": number(people / g.area.area_m2) if g.area.area_m2 else None,
                "counters": counts,
                "driver": driver,
                "driver_rise": number(rise),
                "score": number(share),
                "readings": [tipping],
            },
        )

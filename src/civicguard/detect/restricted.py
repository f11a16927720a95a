"""Entry into a restricted zone outside its allowed hours: a door opened, a plate read.

Which readings count as an entry is a table, one line per stream; a door opened with a valid
grant still counts, since a badge does not make a night-time entry into a plant expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from civicguard.catalog.model import Catalog, Zone, ZoneKind
from civicguard.detect._support import (
    DEFAULT_REARM_S,
    Episodes,
    Places,
    explain,
    reading,
    reading_alert,
)
from civicguard.detect.base import Detector, SlotIndex
from civicguard.detect.model import Alert, Severity
from civicguard.detect.rules import within_hours
from civicguard.detect.zones import ZoneMap, hours_text
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class EntrySignal:
    """What an entry looks like on one stream: a boolean field that is 1, or any reading."""

    stream: str
    field: str | None
    #: How the explanation words the entry.
    seen: str


#: Streams whose readings say that someone entered where they stand.
ENTRY_SIGNALS = (
    EntrySignal(stream="access.door", field="open", seen="was opened"),
    EntrySignal(stream="traffic.anpr", field=None, seen="read a number plate"),
)


class RestrictedZoneDetector(Detector):
    """Alerts when an entry signal fires inside a restricted zone outside its allowed hours.

    One alert per device and zone per episode (entries closer than ``rearm_s`` apart are one
    episode). Hours are local, in the catalog's time zone.
    """

    name = "restricted_zone"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        rearm_s: float = DEFAULT_REARM_S,
    ) -> None:
        self._places = Places(catalog, device)
        self._zones = ZoneMap(catalog, device)
        self._restricted = frozenset(
            i for i, a in enumerate(self._zones.areas) if a.zone.kind is ZoneKind.RESTRICTED
        )
        self._signals = {
            s.stream: s
            for s in ENTRY_SIGNALS
            if self._restricted
            and catalog.has_stream(s.stream)
            and (s.field is None or s.field in {f.name for f in catalog.stream(s.stream).fields})
        }
        self._slots = SlotIndex()
        self._episodes = Episodes(conditions=max(len(self._zones), 1), rearm_s=rearm_s)

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Find entries in restricted zones among the batch's readings, outside hours."""
        signal = self._signals.get(batch.stream)
        if signal is None or len(batch) == 0:
            return []
        inside = {
            device_id: zones
            for device_id in set(batch.device_ids)
            if (zones := [z for z in self._zones.of(device_id) if z in self._restricted])
        }
        if not inside:
            return []
        entered = np.array([d in inside for d in batch.device_ids], dtype=np.bool_)
        if signal.field is not None:
            if signal.field not in batch.fields:
                return []
            entered &= batch.column(signal.field) == 1.0
        rows = np.flatnonzero(entered)
        if len(rows) == 0:
            return []
        hours = self._zones.local_hours(batch.ts[rows])
        pairs = [
            (int(row), zone, int(hour))
            for row, hour in zip(rows.tolist(), hours.tolist(), strict=True)
            for zone in inside[batch.device_ids[row]]
            if not self._allowed(self._zones.areas[zone].zone, int(hour))
        ]
        if not pairs:
            return []
        at = np.array([p[0] for p in pairs], dtype=np.intp)
        zone_index = np.array([p[1] for p in pairs], dtype=np.intp)
        slots = self._slots.lookup([batch.device_ids[i] for i in at.tolist()])
        fresh = self._episodes.open(slots, zone_index, batch.ts[at])
        return [
            self._alert(batch, row, self._zones.areas[zone].zone, hour, signal, now)
            for (row, zone, hour), new in zip(pairs, fresh.tolist(), strict=True)
            if new
        ]

    @staticmethod
    def _allowed(zone: Zone, hour: int) -> bool:
        return zone.allowed_hours is not None and within_hours(hour, zone.allowed_hours)

    def _alert(
        self,
        batch: ReadingBatch,
        row: int,
        zone: Zone,
        hour: int,
        signal: EntrySignal,
        now: float,
    ) -> Alert:
        device_id = batch.device_ids[row]
        place = self._places.of(batch.stream, device_id, batch.cells[row])
        allowed = hours_text(zone.allowed_hours) if zone.allowed_hours else "never"
        return reading_alert(
            self.name,
            batch,
            row,
            place,
            now,
            kind="restricted_zone_after_hours",
            severity=Severity.HIGH,
            title=f"Entry into {zone.title} outside its hours at {place.name}",
            explanation=explain(
                seen=(
                    f"{place.name}, inside restricted zone {zone.title}, {signal.seen} at "
                    f"{hour:02d}h local time (seq {int(batch.seq[row])})"
                ),
                against=f"while entry is allowed only {allowed} ({self._zones.tz.key})",
                sure="Certain: the reading and the zone's hours say so",
                detector=self.name,
                score=1.0,
            ),
            evidence={
                "zone": zone.name,
                "zone_title": zone.title,
                "allowed_hours": list(zone.allowed_hours) if zone.allowed_hours else None,
                "local_hour": hour,
                "timezone": self._zones.tz.key,
                "score": 1.0,
                "readings": [reading(batch, row)],
            },
        )

"""Declarative rules from the catalog (``door_forced`` when ``open`` and not ``access_granted``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

import numpy as np

from civicguard.catalog.model import AlertRule, Catalog
from civicguard.detect._support import (
    DEFAULT_REARM_S,
    Episodes,
    Places,
    explain,
    figure,
    reading,
    reading_alert,
)
from civicguard.detect.base import Detector, SlotIndex
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class _StreamRules:
    rules: tuple[AlertRule, ...]
    slots: SlotIndex
    episodes: Episodes


def within_hours(hour: int, hours: tuple[int, int]) -> bool:
    """True if ``hour`` lies in ``hours`` = (start, end), which may wrap past midnight.

    >>> within_hours(8, (7, 19)), within_hours(19, (7, 19)), within_hours(23, (22, 6))
    (True, False, True)
    """
    start, end = hours
    if start <= end:
        return start <= hour < end
    return hour >= start or hour < end


class RuleDetector(Detector):
    """Alerts when every condition of a stream's catalog rule holds for a reading.

    A condition ``field: value`` holds when the field equals the value (booleans arrive as
    1.0 and 0.0). A rule with ``outside_hours`` only applies outside those local hours, in
    ``tz``: the catalog's ``timezone`` unless told otherwise.
    """

    name = "rules"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        rearm_s: float = DEFAULT_REARM_S,
        tz: tzinfo | None = None,
    ) -> None:
        self._places = Places(catalog, device)
        self._tz = tz or ZoneInfo(catalog.timezone)
        self._streams = {
            s.name: _StreamRules(
                rules=s.rules,
                slots=SlotIndex(),
                episodes=Episodes(conditions=len(s.rules), rearm_s=rearm_s),
            )
            for s in catalog.streams
            if s.rules
        }

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Evaluate every rule of the batch's stream on all its readings at once."""
        state = self._streams.get(batch.stream)
        if state is None or len(batch) == 0:
            return []
        alerts: list[Alert] = []
        for r, rule in enumerate(state.rules):
            holds = np.ones(len(batch), dtype=np.bool_)
            for field_name, wanted in rule.when:
                if field_name not in batch.fields:
                    holds[:] = False
                    break
                holds &= batch.column(field_name) == wanted
            rows = np.flatnonzero(holds)
            if rule.outside_hours is not None and len(rows):
                hours = rule.outside_hours
                rows = np.array(
                    [i for i in rows.tolist() if not within_hours(self._hour(batch.ts[i]), hours)],
                    dtype=np.intp,
                )
            if len(rows) == 0:
                continue
            slots = state.slots.lookup([batch.device_ids[i] for i in rows])
            fresh = state.episodes.open(slots, np.full(len(rows), r, dtype=np.intp), batch.ts[rows])
            alerts.extend(self._alert(batch, int(i), rule, now) for i in rows[fresh])
        return alerts

    def _hour(self, ts: float) -> int:
        return datetime.fromtimestamp(float(ts), self._tz).hour

    def _alert(self, batch: ReadingBatch, row: int, rule: AlertRule, now: float) -> Alert:
        device_id = batch.device_ids[row]
        place = self._places.of(batch.stream, device_id, batch.cells[row])
        seen = ", ".join(
            f"{name} = {figure(float(batch.values[row, batch.fields.index(name)]))}"
            for name, _ in rule.when
        )
        wanted = " and ".join(f"{name} = {figure(value)}" for name, value in rule.when)
        hours = (
            f" outside the hours {rule.outside_hours[0]}:00 to {rule.outside_hours[1]}:00"
            if rule.outside_hours
            else ""
        )
        explanation = explain(
            seen=f"{place.name} reported {seen} (seq {int(batch.seq[row])})",
            against=f"which matches the catalog rule {rule.name!r}: {wanted}{hours}",
            sure="Certain: the rule holds on the reading as sent",
            detector=self.name,
            score=1.0,
        )
        return reading_alert(
            self.name,
            batch,
            row,
            place,
            now,
            kind=rule.name,
            severity=Severity(rule.severity),
            title=f"{rule.title} at {place.name}",
            explanation=explanation,
            evidence={
                "rule": rule.name,
                "when": dict(rule.when),
                "outside_hours": list(rule.outside_hours) if rule.outside_hours else None,
                "score": 1.0,
                "readings": [reading(batch, row)],
            },
        )

"""Response's domain types: incidents and their life cycle."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IncidentStatus(StrEnum):
    """An incident moves open -> acknowledged -> resolved, never back."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """Alerts that belong together by place and time, handled as one case."""

    id: str
    opened_at: float
    updated_at: float
    status: IncidentStatus
    severity: str
    title: str
    cell: str
    district: str
    alert_count: int
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    note: str = ""
    #: What the incident's alerts have in common (``incidents.group_key``): their area when
    #: they have a place, else the device or the detector and door they are about. Incidents
    #: stored before migration 0008 have "" and are keyed by the area of their ``cell``.
    group_key: str = ""

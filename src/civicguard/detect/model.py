"""Detection's domain types: an alert and the severities it can carry."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How urgently an alert needs a person."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order of urgency, low = 0."""
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """Something a detector found, with the evidence that made it fire."""

    detector: str
    kind: str
    severity: Severity
    title: str
    stream: str
    device_id: str | None
    cell: str
    ts: float
    created_at: float
    #: The readings, baseline and score behind the alert; plain JSON-serialisable data.
    evidence: dict[str, Any]
    #: The alert in plain language: what was seen, against what baseline or threshold, by
    #: which detector and how sure it is, quoting the numbers of ``evidence``.
    explanation: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    lat: float | None = None
    lon: float | None = None
    incident_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The alert as plain JSON-ready data, as the API and the live feed show it."""
        out = dataclasses.asdict(self)
        out["severity"] = self.severity.value
        return out


class Verdict(StrEnum):
    """An operator's judgement of an alert."""

    #: A real problem: the alert was right.
    TRUE = "true"
    #: A false alarm: nothing was wrong.
    FALSE = "false"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertMark:
    """One operator's verdict on one alert, kept so that detectors can be tuned."""

    alert_id: str
    detector: str
    kind: str
    verdict: Verdict
    marked_by: str
    marked_at: float
    #: The operator's remark, already scrubbed of personal identifiers.
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The mark as the API shows it."""
        out = dataclasses.asdict(self)
        out["verdict"] = self.verdict.value
        return out

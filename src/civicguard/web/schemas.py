"""Pydantic schemas of the HTTP API: the only place request and response shapes are declared."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """One rule a request broke: where, and which rule (never the value that broke it)."""

    #: Where in the request: ``body``, ``body.username``, ``query.limit``, ``path.alert_id``.
    where: str
    #: The rule, as a stable code: ``missing``, ``string_too_long``, ``less_than_equal``, ...
    rule: str
    #: The rule in words.
    message: str


class ErrorPublic(BaseModel):
    """Every error body: a stable reason code, a human-readable detail, and for a request that
    broke the API's rules (``invalid_request``), each rule it broke."""

    reason: str = Field(description="stable machine-readable code, e.g. not_found")
    detail: str = Field(description="what was wrong, in words")
    errors: list[Problem] | None = Field(
        default=None, description="invalid_request only: every rule the request broke"
    )


class LoginRequest(BaseModel):
    """Credentials of a member of staff."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionPublic(BaseModel):
    """A signed-in session: the bearer token (also set as an HttpOnly cookie) and its holder."""

    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    username: str
    role: str
    expires_at: float


class MePublic(BaseModel):
    """Who the caller is."""

    username: str
    role: str
    expires_at: float


class UserCreate(BaseModel):
    """A new staff account."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: str


class UserPublic(BaseModel):
    """A staff account, without its password hash."""

    username: str
    role: str
    created_at: float
    disabled: bool = False


class DeviceCreate(BaseModel):
    """A device to provision."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    stream: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    district: str = Field(default="", max_length=64)
    label: str = Field(default="", max_length=200)


class DevicePublic(BaseModel):
    """A provisioned device (never its secret)."""

    id: str
    stream: str
    lat: float
    lon: float
    district: str
    label: str
    revoked: bool


class DeviceProvisioned(DevicePublic):
    """A device just provisioned, with its secret: shown this once, never again."""

    secret: str


class RejectionPublic(BaseModel):
    """A refused reading (or a refused whole body): why, and which one."""

    reason: str = Field(description="e.g. wrong_type, out_of_range, replayed_sequence")
    detail: str = Field(description="the field and the rule, never the value")
    index: int | None = Field(description="position in the body's array, null for the body")
    device: str | None
    seq: int | None


class IngestOutcome(BaseModel):
    """What became of an ingested body: 202 when a reading was stored (or was a duplicate of
    one stored), 422 when every reading was refused."""

    accepted: int
    duplicates: int
    rejected: list[RejectionPublic]


class ReadingPublic(BaseModel):
    """A stored reading after the privacy gateway."""

    id: int
    device_id: str
    stream: str
    seq: int
    ts: float
    received_at: float
    cell: str
    values: dict[str, Any]


class AlertPublic(BaseModel):
    """An alert with its evidence."""

    id: str
    created_at: float
    ts: float
    detector: str
    kind: str
    severity: str
    title: str
    stream: str
    device_id: str | None
    cell: str
    lat: float | None
    lon: float | None
    incident_id: str | None
    evidence: dict[str, Any]
    #: The alert in plain language, quoting its evidence.
    explanation: str


class IncidentPublic(BaseModel):
    """An incident and where it is in its life cycle."""

    id: str
    opened_at: float
    updated_at: float
    status: str
    severity: str
    title: str
    cell: str
    district: str
    alert_count: int
    acknowledged_by: str | None
    acknowledged_at: float | None
    resolved_by: str | None
    resolved_at: float | None
    note: str
    #: What its alerts share: an H3 area, ``device:<id>`` or ``source:<detector>:<stream>:<door>``
    #: for alerts without a place ("" for incidents stored before the key was kept).
    group_key: str = ""


class IncidentDetail(IncidentPublic):
    """An incident with its alerts."""

    alerts: list[AlertPublic]


class IncidentAction(BaseModel):
    """An optional note kept with an acknowledgement or resolution."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class DeadLetterPublic(BaseModel):
    """A refused message with its reason (payload already scrubbed by the privacy gateway)."""

    id: int
    received_at: float
    transport: str
    reason: str
    detail: str
    device_id: str | None
    stream: str | None
    seq: int | None
    idx: int | None
    payload: str


class AlertMarkCreate(BaseModel):
    """An operator's verdict on an alert: ``true`` (a real problem) or ``false`` (false alarm)."""

    model_config = ConfigDict(extra="forbid")
    verdict: Literal["true", "false"]
    note: str = Field(default="", max_length=2000)


class AlertMarkPublic(BaseModel):
    """A stored verdict; the note has passed the PII scrubber."""

    alert_id: str
    detector: str
    kind: str
    verdict: str
    marked_by: str
    marked_at: float
    note: str


class DetectorFeedbackPublic(BaseModel):
    """How operators judged one detector's alerts (the latest mark of each alert counts)."""

    detector: str
    alerts: int
    marked: int
    marked_true: int
    marked_false: int
    #: marked_true / marked; null before any alert of the detector was marked.
    precision: float | None

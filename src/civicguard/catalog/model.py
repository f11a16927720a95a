"""The catalog's domain types: what each data stream is, why it exists and how it is treated."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Category(StrEnum):
    """Data protection category of a stream (GDPR Art. 4 and 9)."""

    NON_PERSONAL = "non_personal"
    PERSONAL = "personal"
    SPECIAL = "special_category"


class LegalBasis(StrEnum):
    """GDPR Art. 6(1) legal bases; non-personal streams declare ``not_applicable``."""

    NOT_APPLICABLE = "not_applicable"
    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


class FieldType(StrEnum):
    """Wire types a field may carry."""

    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING = "string"
    STRING_LIST = "string_list"

    @property
    def numeric(self) -> bool:
        """True for types that travel in the batch's numeric matrix."""
        return self in (FieldType.NUMBER, FieldType.INTEGER, FieldType.BOOLEAN)


class Treatment(StrEnum):
    """What the privacy gateway does with a field before anything else sees it."""

    KEEP = "keep"
    DROP = "drop"
    PSEUDONYMISE = "pseudonymise"
    #: A number becomes the lower bound of its ``bucket``-wide range (e.g. age 37 -> 30).
    GENERALISE = "generalise"
    #: A list of identifiers becomes the number of distinct values in it; none leave the gateway.
    COUNT = "count"


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One field of a stream's readings."""

    name: str
    type: FieldType
    treatment: Treatment = Treatment.KEEP
    unit: str | None = None
    description: str = ""
    required: bool = True
    #: Physically possible values; a reading outside is rejected as bad input.
    range: tuple[float, float] | None = None
    #: Values a healthy system stays within; a reading outside raises an alert.
    normal: tuple[float, float] | None = None
    #: Largest physically plausible change per second; a faster change raises an alert.
    max_rate: float | None = None
    #: Allowed values of a string field.
    choices: tuple[str, ...] | None = None
    max_length: int = 64
    max_items: int = 1000
    #: The kind of personal identifier this field holds (``licence_plate``, ``mac_address``...).
    identifier: str | None = None
    #: Width of the ranges a ``generalise`` field is rounded down to.
    bucket: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRule:
    """A declarative rule: alert when ``field`` equals ``equals`` (and others hold) or exceeds."""

    name: str
    title: str
    severity: str
    when: tuple[tuple[str, float], ...]
    #: Only outside these local hours (start, end), e.g. (7, 19); ``None`` means always.
    outside_hours: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Stream:
    """A data stream the city runs: one kind of device and the readings it sends."""

    name: str
    title: str
    description: str
    category: Category
    purposes: tuple[str, ...]
    legal_basis: LegalBasis
    retention_days: float
    report_interval_s: float
    h3_resolution: int
    fields: tuple[FieldSpec, ...]
    rules: tuple[AlertRule, ...] = ()
    readers: tuple[str, ...] = ()
    #: (latitude field, longitude field) when each reading carries its own place: the gateway
    #: turns them into the reading's H3 cell and drops them. ``None``: the device's place.
    location: tuple[str, str] | None = None
    #: Timestamps leave the gateway rounded down to this many seconds; ``None``: as sent.
    time_bucket_s: float | None = None
    #: The field naming the person a reading is about (consent and subject rights key on it).
    subject_field: str | None = None
    #: False when the stream's fields are controlled on/off (pumps, valves) and a model of its
    #: own watches it: the generic learned-baseline detectors then leave it alone.
    baseline_anomalies: bool = True
    #: A door of this stream left open longer than this raises an alert; ``None``: never.
    held_open_after_s: float | None = None

    @property
    def numeric_fields(self) -> tuple[FieldSpec, ...]:
        """Fields carried in the numeric matrix, in declaration order."""
        return tuple(f for f in self.fields if f.type.numeric)

    @property
    def text_fields(self) -> tuple[FieldSpec, ...]:
        """Fields carried as Python values beside the matrix."""
        return tuple(f for f in self.fields if not f.type.numeric)

    def field(self, name: str) -> FieldSpec:
        """Return the field called ``name``; ``KeyError`` if the stream has none."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Purpose:
    """A purpose of processing, declared once and referred to by streams."""

    name: str
    description: str


class ZoneKind(StrEnum):
    """What a zone of the city is for: kept to authorised people, or open to the public."""

    RESTRICTED = "restricted"
    PUBLIC_SPACE = "public_space"


@dataclass(frozen=True, slots=True, kw_only=True)
class Zone:
    """A named area of the city, drawn as a polygon of (latitude, longitude) points."""

    name: str
    title: str
    kind: ZoneKind
    #: Closed ring: the last point repeats the first.
    polygon: tuple[tuple[float, float], ...]
    #: Local hours (start, end) when entering is allowed; ``None``: no restriction by hour.
    allowed_hours: tuple[int, int] | None = None
    #: People the zone holds safely; ``None`` when it follows from area and density limit.
    capacity: int | None = None
    #: People per square metre that the zone must not exceed when no capacity is declared.
    density_limit: float | None = None
    #: Doors inside the zone left open longer than this alert (overrides the stream's limit).
    held_open_after_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestLimits:
    """Limits on what ingest accepts, from the catalog's ``ingest`` section."""

    max_payload_bytes: int = 256 * 1024
    max_batch: int = 5000
    max_future_s: float = 300.0
    max_age_s: float = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRetention:
    """How long records that no stream describes are kept, from the catalog's ``retention``."""

    #: Consent spans after their withdrawal, and receipts no longer backing a live consent.
    consent_proof_s: float = 3 * 365 * 86_400.0
    #: Subject requests after they are done, and the record that a subject was erased.
    subject_requests_s: float = 3 * 365 * 86_400.0
    #: Citizen reports, by arrival.
    citizen_reports_s: float = 365 * 86_400.0
    #: Operators' verdicts on alerts (tuning data), by when they were given.
    alert_marks_s: float = 2 * 365 * 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """The single source of truth: every stream, purpose and limit, as one versioned document."""

    version: str
    city: str
    controller: str
    purposes: tuple[Purpose, ...]
    streams: tuple[Stream, ...]
    limits: IngestLimits = field(default_factory=IngestLimits)
    pseudonym_rotation_s: float = 86_400.0
    #: How long refused messages are kept (those of a stream: at most its retention), and
    #: alerts that belong to no stream.
    dead_letter_retention_s: float = 30 * 86_400.0
    #: Retention of consents, subject requests, citizen reports and alert marks.
    retention: RecordRetention = field(default_factory=RecordRetention)
    #: Where the controller is established (ISO 3166 code), named on consent receipts.
    jurisdiction: str = ""
    #: IANA name of the city's time zone; local hours (zones, rules) are read in it.
    timezone: str = "UTC"
    zones: tuple[Zone, ...] = ()
    source: str = "<memory>"

    def stream(self, name: str) -> Stream:
        """Return the stream called ``name``; ``KeyError`` if the catalog does not declare it."""
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise KeyError(name)

    def has_stream(self, name: str) -> bool:
        """True if the catalog declares a stream called ``name``."""
        return any(s.name == name for s in self.streams)

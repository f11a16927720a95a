"""Load a catalog from YAML and validate it; each error names the file, the path and the problem."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from civicguard.catalog.model import (
    AlertRule,
    Catalog,
    Category,
    FieldSpec,
    FieldType,
    IngestLimits,
    LegalBasis,
    Purpose,
    RecordRetention,
    Stream,
    Treatment,
    Zone,
    ZoneKind,
)
from civicguard.catalog.zones import check_polygon, check_timezone

SUPPORTED_VERSIONS = ("1",)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class CatalogError(ValueError):
    """A catalog that cannot be used; ``problems`` lists (path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {message}" for path, message in problems]
        super().__init__("invalid catalog\n" + "\n".join(lines))


def parse_duration(value: object) -> float:
    """Parse ``"90d"``, ``"24h"``, ``"1s"``, ``"250ms"`` or a number of seconds into seconds.

    >>> parse_duration("24h")
    86400.0
    >>> parse_duration(2)
    2.0
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30d' or '1s', got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"expected a duration such as '30d' or '1s', got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FieldDoc(_Strict):
    type: FieldType
    treatment: Treatment = Treatment.KEEP
    unit: str | None = None
    description: str = ""
    required: bool = True
    range: tuple[float, float] | None = None
    normal: tuple[float, float] | None = None
    max_rate: float | None = Field(default=None, gt=0)
    choices: tuple[str, ...] | None = None
    max_length: int = Field(default=64, gt=0, le=4096)
    max_items: int = Field(default=1000, gt=0)
    identifier: str | None = None
    bucket: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _coherent(self) -> _FieldDoc:
        for name in ("range", "normal"):
            bounds = getattr(self, name)
            if bounds is not None and bounds[0] > bounds[1]:
                raise ValueError(f"{name} must be [low, high] with low <= high, got {list(bounds)}")
        if (
            self.normal
            and self.range
            and not (self.range[0] <= self.normal[0] and self.normal[1] <= self.range[1])
        ):
            raise ValueError("normal band must lie inside the physical range")
        if self.identifier and self.treatment is Treatment.KEEP:
            raise ValueError(
                f"field holds a personal identifier ({self.identifier}); "
                "its treatment must be pseudonymise or drop, not keep"
            )
        if not self.type.numeric and (self.range or self.normal or self.max_rate):
            raise ValueError("range, normal and max_rate apply only to numeric fields")
        if self.treatment is Treatment.PSEUDONYMISE and self.type.numeric:
            raise ValueError("only string fields can be pseudonymised")
        if self.treatment is Treatment.GENERALISE and not (
            self.type in (FieldType.NUMBER, FieldType.INTEGER) and self.bucket
        ):
            raise ValueError("generalise applies to number fields and needs a bucket width")
        if self.bucket is not None and self.treatment is not Treatment.GENERALISE:
            raise ValueError("bucket applies only to fields whose treatment is generalise")
        if self.treatment is Treatment.COUNT and self.type is not FieldType.STRING_LIST:
            raise ValueError("count applies only to string_list fields")
        return self


class _RuleDoc(_Strict):
    title: str
    severity: Literal["low", "medium", "high", "critical"]
    when: dict[str, float]
    outside_hours: tuple[int, int] | None = None


class _StreamDoc(_Strict):
    title: str
    description: str = ""
    category: Category
    purposes: list[str] = Field(min_length=1)
    legal_basis: LegalBasis
    retention: Duration
    report_interval: Duration
    h3_resolution: int = Field(default=9, ge=0, le=15)
    readers: list[str] = Field(default_factory=list)
    fields: dict[str, _FieldDoc] = Field(min_length=1)
    rules: dict[str, _RuleDoc] = Field(default_factory=dict)
    location: tuple[str, str] | None = None
    time_bucket: Duration | None = None
    subject: str | None = None
    held_open_after: Duration | None = Field(default=None, gt=0)
    baseline_anomalies: bool = True

    @model_validator(mode="after")
    def _coherent(self) -> _StreamDoc:
        personal = self.category is not Category.NON_PERSONAL
        for name in self.location or ():
            spec = self.fields.get(name)
            if spec is None or spec.type is not FieldType.NUMBER:
                raise ValueError(f"location field {name!r} must be a number field of the stream")
        if self.time_bucket is not None and self.time_bucket <= 0:
            raise ValueError("time_bucket must be a positive duration")
        if self.subject is not None:
            spec = self.fields.get(self.subject)
            if spec is None or not spec.identifier:
                raise ValueError(
                    f"subject field {self.subject!r} must be a field of the stream "
                    "that declares an identifier"
                )
        if self.held_open_after is not None and (
            "open" not in self.fields or self.fields["open"].type is not FieldType.BOOLEAN
        ):
            raise ValueError("held_open_after needs a boolean field called 'open'")
        if self.legal_basis is LegalBasis.CONSENT and self.subject is None:
            raise ValueError("a stream whose legal basis is consent must name its subject field")
        if personal and self.legal_basis is LegalBasis.NOT_APPLICABLE:
            raise ValueError("a stream with personal data needs a legal basis")
        if any(f.identifier for f in self.fields.values()) and not personal:
            raise ValueError("a stream with personal identifiers cannot be non_personal")
        for rule_name, rule in self.rules.items():
            for field_name in rule.when:
                if field_name not in self.fields:
                    raise ValueError(f"rule {rule_name!r} names unknown field {field_name!r}")
        return self


class _ZoneDoc(_Strict):
    title: str
    kind: ZoneKind
    polygon: tuple[tuple[float, float], ...]
    allowed_hours: tuple[int, int] | None = None
    capacity: int | None = Field(default=None, gt=0)
    density_limit: float | None = Field(default=None, gt=0)
    held_open_after: Duration | None = Field(default=None, gt=0)

    @field_validator("polygon")
    @classmethod
    def _ring(cls, polygon: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        check_polygon(polygon)
        return polygon

    @field_validator("allowed_hours")
    @classmethod
    def _hours(cls, hours: tuple[int, int] | None) -> tuple[int, int] | None:
        if hours is not None and not (0 <= hours[0] <= 23 and 0 <= hours[1] <= 24):
            raise ValueError(f"allowed_hours must be [start, end] with 0-23 and 0-24, got {hours}")
        return hours

    @model_validator(mode="after")
    def _coherent(self) -> _ZoneDoc:
        if self.kind is ZoneKind.RESTRICTED and self.allowed_hours is None:
            raise ValueError("a restricted zone needs allowed_hours ([0, 0] for never)")
        if self.kind is not ZoneKind.PUBLIC_SPACE and (self.capacity or self.density_limit):
            raise ValueError("capacity and density_limit apply only to public_space zones")
        return self


class _IngestDoc(_Strict):
    max_payload_bytes: int = Field(default=256 * 1024, gt=0)
    max_batch: int = Field(default=5000, gt=0)
    max_future: Duration = 300.0
    max_age: Duration = 86_400.0


_RECORDS = RecordRetention()


class _RetentionDoc(_Strict):
    """Retention of records no stream describes (defaults: :class:`RecordRetention`'s)."""

    consent_proof: Duration = Field(default=_RECORDS.consent_proof_s, gt=0)
    subject_requests: Duration = Field(default=_RECORDS.subject_requests_s, gt=0)
    citizen_reports: Duration = Field(default=_RECORDS.citizen_reports_s, gt=0)
    alert_marks: Duration = Field(default=_RECORDS.alert_marks_s, gt=0)


class _CatalogDoc(_Strict):
    catalog_version: str
    city: str
    controller: str
    pseudonym_rotation: Duration = 86_400.0
    dead_letter_retention: Duration = 30 * 86_400.0
    jurisdiction: str = ""
    timezone: str = "UTC"
    ingest: _IngestDoc = Field(default_factory=_IngestDoc)
    retention: _RetentionDoc = Field(default_factory=_RetentionDoc)
    purposes: dict[str, str] = Field(min_length=1)
    streams: dict[str, _StreamDoc] = Field(min_length=1)
    zones: dict[str, _ZoneDoc] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        check_timezone(name)
        return name

    @model_validator(mode="after")
    def _supported(self) -> _CatalogDoc:
        if self.catalog_version not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"catalog_version {self.catalog_version!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_VERSIONS)})"
            )
        return self


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _to_catalog(doc: _CatalogDoc, source: str) -> Catalog:
    streams = []
    for name, s in doc.streams.items():
        fields = tuple(
            FieldSpec(
                name=fname,
                type=f.type,
                treatment=f.treatment,
                unit=f.unit,
                description=f.description,
                required=f.required,
                range=f.range,
                normal=f.normal,
                max_rate=f.max_rate,
                choices=f.choices,
                max_length=f.max_length,
                max_items=f.max_items,
                identifier=f.identifier,
                bucket=f.bucket,
            )
            for fname, f in s.fields.items()
        )
        rules = tuple(
            AlertRule(
                name=rname,
                title=r.title,
                severity=r.severity,
                when=tuple(r.when.items()),
                outside_hours=r.outside_hours,
            )
            for rname, r in s.rules.items()
        )
        streams.append(
            Stream(
                name=name,
                title=s.title,
                description=s.description,
                category=s.category,
                purposes=tuple(s.purposes),
                legal_basis=s.legal_basis,
                retention_days=s.retention / 86_400.0,
                report_interval_s=s.report_interval,
                h3_resolution=s.h3_resolution,
                fields=fields,
                rules=rules,
                readers=tuple(s.readers),
                location=s.location,
                time_bucket_s=s.time_bucket,
                subject_field=s.subject,
                baseline_anomalies=s.baseline_anomalies,
                held_open_after_s=s.held_open_after,
            )
        )
    zones = tuple(
        Zone(
            name=name,
            title=z.title,
            kind=z.kind,
            polygon=z.polygon,
            allowed_hours=z.allowed_hours,
            capacity=z.capacity,
            density_limit=z.density_limit,
            held_open_after_s=z.held_open_after,
        )
        for name, z in doc.zones.items()
    )
    return Catalog(
        version=doc.catalog_version,
        city=doc.city,
        controller=doc.controller,
        purposes=tuple(Purpose(name=k, description=v) for k, v in doc.purposes.items()),
        streams=tuple(streams),
        limits=IngestLimits(
            max_payload_bytes=doc.ingest.max_payload_bytes,
            max_batch=doc.ingest.max_batch,
            max_future_s=doc.ingest.max_future,
            max_age_s=doc.ingest.max_age,
        ),
        pseudonym_rotation_s=doc.pseudonym_rotation,
        dead_letter_retention_s=doc.dead_letter_retention,
        retention=RecordRetention(
            consent_proof_s=doc.retention.consent_proof,
            subject_requests_s=doc.retention.subject_requests,
            citizen_reports_s=doc.retention.citizen_reports,
            alert_marks_s=doc.retention.alert_marks,
        ),
        jurisdiction=doc.jurisdiction,
        timezone=doc.timezone,
        zones=zones,
        source=source,
    )


def parse_catalog(text: str, source: str = "<string>") -> Catalog:
    """Parse and validate catalog YAML; raise :class:`CatalogError` naming every problem."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        raise CatalogError(source, [(where, f"not valid YAML: {exc}")]) from exc
    except (ValueError, OverflowError) as exc:
        # PyYAML's scanner lets these through for an escape beyond Unicode ("\U0011FFFF").
        raise CatalogError(source, [("(document)", f"not valid YAML: {exc}")]) from exc
    if not isinstance(raw, dict):
        raise CatalogError(source, [("(top level)", "expected a mapping of catalog sections")])
    try:
        doc = _CatalogDoc.model_validate(raw)
    except ValidationError as exc:
        problems = [(_path(err["loc"]), err["msg"]) for err in exc.errors()]
        raise CatalogError(source, problems) from exc
    undeclared = [
        (f"streams.{name}.purposes.{i}", f"purpose {purpose!r} is not declared under purposes")
        for name, stream in doc.streams.items()
        for i, purpose in enumerate(stream.purposes)
        if purpose not in doc.purposes
    ]
    if undeclared:
        raise CatalogError(source, undeclared)
    return _to_catalog(doc, source)


def load_catalog(path: str | Path) -> Catalog:
    """Load the catalog at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError(str(file), [(f"byte {exc.start}", "not UTF-8 text")]) from None
    return parse_catalog(text, source=str(file))


def demo_catalog() -> Catalog:
    """The demo city's catalog, shipped inside the package."""
    text = resources.files("civicguard.catalog").joinpath("demo_city.yaml").read_text("utf-8")
    return parse_catalog(text, source="civicguard/catalog/demo_city.yaml")

"""The data protection officer's overview: what each stream's data goes through, and what is left.

One document, assembled from the catalog (treatments, purposes, legal basis, retention), the
privacy gateway's and the consent gate's counters, the database (readings stored, dead letters,
erased subjects, key destructions, retention runs), the key store (names only) and the subject
requests still pending.

Two kinds of figures sit side by side and are labelled as such: ``process`` counters are this
process's, since it started (a restart resets them; other workers count their own), while
``stored`` figures come from the database and cover every process. The document names no
subject: subject keys are counted, never listed, and pending requests are shown without their
subject's handle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from civicguard.catalog.model import Treatment
from civicguard.privacy.gateway import ACTIONS
from civicguard.privacy.pseudonyms import PREFIX, parse_key_name
from civicguard.store.lifecycle import KeyEventRepository, RetentionRunRepository

if TYPE_CHECKING:
    from civicguard.catalog.model import FieldSpec, Stream
    from civicguard.platform import Platform

DAY = 86_400.0

#: What each kind of figure means, shipped in the document so that no reader has to guess.
FIGURES = {
    "process": "counted by this process since it started; reset on restart, other workers "
    "count their own",
    "stored": "read from the database: every process, everything not yet past retention",
}

#: Key-store namespaces whose key names could identify a person: counted, never named.
COUNTED_ONLY = "subject/"

#: Refusals that could not be tied to a stream (unauthenticated senders, unknown streams).
NO_STREAM = "(none)"


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldTreatment:
    """One field of a stream and what the privacy gateway does with it."""

    name: str
    type: str
    treatment: str
    identifier: str | None
    bucket: float | None
    #: What the treatment amounts to, in words.
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessCounts:
    """What this process's gateway and consent gate did with a stream's readings."""

    readings: int
    refused: int
    kept: int
    generalised: int
    pseudonymised: int
    counted: int
    dropped: int
    #: Consent-based streams only: readings let through and refused by the consent gate.
    consent_admitted: int | None = None
    consent_refused: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCounts:
    """What the database holds of a stream."""

    readings: int
    dead_letters: int
    dead_letters_by_reason: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class PseudonymKeys:
    """A stream's pseudonym keys: one per rotation period, destroyed after retention."""

    alive: int
    destroyed: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOverview:
    """One stream: its treatments and the counts of what happened to its readings."""

    name: str
    title: str
    category: str
    legal_basis: str
    purposes: tuple[str, ...]
    retention_days: float
    place: str
    time_bucket_s: float | None
    fields: tuple[FieldTreatment, ...]
    process: ProcessCounts
    stored: StoredCounts
    pseudonym_keys: PseudonymKeys


@dataclass(frozen=True, slots=True, kw_only=True)
class Unattributed:
    """Refusals tied to no catalog stream (unauthenticated or unknown senders)."""

    process_refused: int
    stored_dead_letters_by_reason: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyDestruction:
    """A recorded key destruction: name, when and why (never key bytes)."""

    name: str
    at: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyOverview:
    """Keys alive (by name, subject keys only counted) and destroyed."""

    #: Keys alive per namespace (``pseudonym``, ``subject``, ``sign``, ``seal``...): counts.
    alive_by_namespace: dict[str, int]
    #: Names of platform keys alive (signing, sealing, sessions); pseudonym keys are per stream.
    platform_keys: tuple[str, ...]
    subject_keys_alive: int
    #: Subjects known to the database, and how many were erased (key shredded).
    subjects_known: int
    subjects_erased: int
    pseudonym_keys_destroyed: int
    recent_destructions: tuple[KeyDestruction, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRequest:
    """A subject request waiting for the DPO, without its subject."""

    id: str
    kind: str
    requested_at: str
    requested_by: str
    waiting_days: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionStatus:
    """The retention policy of records no stream describes, and what the sweeper did."""

    policy_days: dict[str, float]
    last_run_at: str | None
    last_run_removed: dict[str, int]
    removed_in_all_runs: dict[str, int]
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyOverview:
    """The DPO's overview of one platform, JSON-ready through :meth:`as_dict`."""

    generated_at: str
    city: str
    controller: str
    catalog_version: str
    figures: dict[str, str]
    streams: tuple[StreamOverview, ...]
    unattributed: Unattributed
    keys: KeyOverview
    pending_requests: tuple[PendingRequest, ...]
    retention: RetentionStatus

    def as_dict(self) -> dict[str, Any]:
        """The overview as plain dicts, lists and scalars."""
        return asdict(self)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _place(stream: Stream) -> str:
    where = (
        f"each reading's own position ({stream.location[0]}, {stream.location[1]}; dropped)"
        if stream.location
        else "the device's site"
    )
    return f"{where} -> H3 cell, resolution {stream.h3_resolution}"


def _field(stream: Stream, spec: FieldSpec) -> FieldTreatment:
    """A field's treatment as the gateway applies it (a reading's position becomes a cell)."""
    treatment = spec.treatment
    if stream.location and spec.name in stream.location:
        treatment = Treatment.GENERALISE
        note = f"part of the reading's position: becomes its H3 cell (res {stream.h3_resolution})"
    elif spec.treatment is Treatment.PSEUDONYMISE:
        note = f"{spec.identifier or 'value'}: keyed HMAC, key rotated and destroyed on schedule"
    elif spec.treatment is Treatment.GENERALISE:
        note = f"rounded down to a multiple of {spec.bucket:g}"
    elif spec.treatment is Treatment.COUNT:
        note = f"{spec.identifier or 'values'}: only how many distinct ones"
    elif spec.treatment is Treatment.DROP:
        note = "removed at the gateway"
    else:
        note = f"kept as sent{f' ({spec.unit})' if spec.unit else ''}"
    return FieldTreatment(
        name=spec.name,
        type=spec.type.value,
        treatment=treatment.value,
        identifier=spec.identifier,
        bucket=spec.bucket,
        note=note,
    )


def _namespace(name: str) -> str:
    return name.split("/", 1)[0]


def _pseudonym_stream(name: str, rotation_s: float) -> str:
    key = parse_key_name(name, rotation_s)
    return key.stream if key is not None and key.stream else NO_STREAM


def _process(counts: dict[str, int], consent: dict[str, int] | None) -> ProcessCounts:
    tally = {action: int(counts.get(action, 0)) for action in ACTIONS}
    return ProcessCounts(
        **tally,
        consent_admitted=None if consent is None else int(consent.get("admitted", 0)),
        consent_refused=None if consent is None else int(consent.get("refused", 0)),
    )


def privacy_overview(platform: Platform, *, recent: int = 20) -> PrivacyOverview:
    """Assemble the DPO's overview of ``platform`` (``recent``: key destructions listed)."""
    catalog = platform.catalog
    now = platform.clock.now()
    engine = platform.store.engine
    gateway_counts = platform.ingest.gateway.counts()
    gate = platform.citizens.gate
    consent_counts = gate.counts()
    stored_readings = platform.store.readings.count_by_stream()
    letters = platform.store.dead_letters.count_by_stream()
    journal = KeyEventRepository(engine)
    rotation = catalog.pseudonym_rotation_s

    alive = platform.keys.names()
    alive_pseudonyms: dict[str, list[str]] = {}
    for name in alive:
        if name.startswith(PREFIX):
            alive_pseudonyms.setdefault(_pseudonym_stream(name, rotation), []).append(name)
    destroyed_pseudonyms: dict[str, int] = {}
    for name in journal.destroyed(PREFIX):
        owner = _pseudonym_stream(name, rotation)
        destroyed_pseudonyms[owner] = destroyed_pseudonyms.get(owner, 0) + 1

    streams = []
    for stream in catalog.streams:
        by_reason = letters.get(stream.name, {})
        names = tuple(alive_pseudonyms.get(stream.name, ()))
        streams.append(
            StreamOverview(
                name=stream.name,
                title=stream.title,
                category=stream.category.value,
                legal_basis=stream.legal_basis.value,
                purposes=stream.purposes,
                retention_days=stream.retention_days,
                place=_place(stream),
                time_bucket_s=stream.time_bucket_s,
                fields=tuple(_field(stream, f) for f in stream.fields),
                process=_process(
                    gateway_counts.get(stream.name, {}),
                    consent_counts.get(stream.name, {}) if stream.name in gate.streams else None,
                ),
                stored=StoredCounts(
                    readings=stored_readings.get(stream.name, 0),
                    dead_letters=sum(by_reason.values()),
                    dead_letters_by_reason=dict(sorted(by_reason.items())),
                ),
                pseudonym_keys=PseudonymKeys(
                    alive=len(names),
                    destroyed=destroyed_pseudonyms.get(stream.name, 0),
                    names=names,
                ),
            )
        )

    declared = {s.name for s in catalog.streams}
    stray: dict[str, int] = {}
    for stream_name, by_reason in letters.items():
        if stream_name is None or stream_name not in declared:
            for reason, n in by_reason.items():
                stray[reason] = stray.get(reason, 0) + n
    unattributed = Unattributed(
        process_refused=sum(
            counts.get("refused", 0)
            for name, counts in gateway_counts.items()
            if name not in declared
        ),
        stored_dead_letters_by_reason=dict(sorted(stray.items())),
    )

    namespaces: dict[str, int] = {}
    for name in alive:
        namespaces[_namespace(name)] = namespaces.get(_namespace(name), 0) + 1
    subjects = platform.citizens.rights.records.subjects.counts()
    destructions = tuple(
        KeyDestruction(name=e["name"], at=_iso(e["at"]), reason=e["reason"])
        for e in journal.destructions(recent, excluding=COUNTED_ONLY)
    )
    keys = KeyOverview(
        alive_by_namespace=dict(sorted(namespaces.items())),
        platform_keys=tuple(
            n for n in alive if not n.startswith(PREFIX) and not n.startswith(COUNTED_ONLY)
        ),
        subject_keys_alive=sum(1 for n in alive if n.startswith(COUNTED_ONLY)),
        subjects_known=subjects["known"],
        subjects_erased=subjects["erased"],
        pseudonym_keys_destroyed=sum(destroyed_pseudonyms.values()),
        recent_destructions=destructions,
    )

    pending = tuple(
        PendingRequest(
            id=str(r["id"]),
            kind=str(r["kind"]),
            requested_at=_iso(r["requested_at"]),
            requested_by=str(r["requested_by"]),
            waiting_days=round((now - r["requested_at"]) / DAY, 2),
        )
        for r in platform.citizens.rights.pending(limit=1000)
    )

    runs = RetentionRunRepository(engine)
    latest = runs.latest()
    records = catalog.retention
    retention = RetentionStatus(
        policy_days={
            "dead_letters": catalog.dead_letter_retention_s / DAY,
            "consent_proof": records.consent_proof_s / DAY,
            "subject_requests": records.subject_requests_s / DAY,
            "citizen_reports": records.citizen_reports_s / DAY,
            "alert_marks": records.alert_marks_s / DAY,
        },
        last_run_at=None if latest is None else _iso(latest[0]),
        last_run_removed={} if latest is None else latest[1],
        removed_in_all_runs=runs.totals(),
        targets=tuple(t.name for t in platform.retention.targets),
    )

    return PrivacyOverview(
        generated_at=_iso(now),
        city=catalog.city,
        controller=catalog.controller,
        catalog_version=catalog.version,
        figures=dict(FIGURES),
        streams=tuple(streams),
        unattributed=unattributed,
        keys=keys,
        pending_requests=pending,
        retention=retention,
    )

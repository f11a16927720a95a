"""Repositories: the only code that speaks SQL. Each writes and reads one kind of record."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from civicguard.detect.model import Alert, AlertMark, Severity, Verdict
from civicguard.ingest.model import Device, ReadingBatch, Rejection
from civicguard.respond.model import Incident, IncidentStatus
from civicguard.store import schema
from civicguard.store.bulk import ReadingRow, insert_readings, reading_rows


class DeviceRepository:
    """Provisioned devices and their sealed secrets."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, device: Device, secret_sealed: bytes, created_at: float) -> None:
        """Store a new device; ``ValueError`` if the id is taken."""
        with self._engine.begin() as conn:
            t = schema.devices
            if conn.execute(select(t.c.id).where(t.c.id == device.id)).first():
                raise ValueError(f"device {device.id!r} already exists")
            conn.execute(
                insert(schema.devices).values(
                    id=device.id,
                    stream=device.stream,
                    lat=device.lat,
                    lon=device.lon,
                    district=device.district,
                    label=device.label,
                    secret_sealed=secret_sealed,
                    revoked=False,
                    created_at=created_at,
                )
            )

    def add_many(self, rows: Sequence[tuple[Device, bytes]], created_at: float) -> None:
        """Store many new devices in one transaction."""
        if not rows:
            return
        with self._engine.begin() as conn:
            conn.execute(
                insert(schema.devices),
                [
                    {
                        "id": d.id,
                        "stream": d.stream,
                        "lat": d.lat,
                        "lon": d.lon,
                        "district": d.district,
                        "label": d.label,
                        "secret_sealed": sealed,
                        "revoked": False,
                        "created_at": created_at,
                    }
                    for d, sealed in rows
                ],
            )

    def revoke(self, device_id: str, when: float) -> bool:
        """Mark a device revoked; False if there is no such device."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(schema.devices)
                .where(schema.devices.c.id == device_id)
                .values(revoked=True, revoked_at=when)
            )
            return bool(result.rowcount)

    def all(self) -> list[tuple[Device, bytes]]:
        """Every device with its sealed secret."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(schema.devices).order_by(schema.devices.c.id)).mappings()
            return [(_device(r), bytes(r["secret_sealed"])) for r in rows]

    def version(self) -> tuple[Any, ...]:
        """A cheap summary that changes whenever a device is added or revoked (one aggregate
        query), so that a process can tell that another one changed the devices."""
        t = schema.devices
        q = select(
            func.count(),
            func.count(t.c.revoked_at),
            func.max(t.c.created_at),
            func.max(t.c.revoked_at),
        )
        with self._engine.connect() as conn:
            return tuple(conn.execute(q).one())


def _device(row: Any) -> Device:
    return Device(
        id=row["id"],
        stream=row["stream"],
        lat=row["lat"],
        lon=row["lon"],
        district=row["district"],
        label=row["label"],
        revoked=bool(row["revoked"]),
    )


class ReadingRepository:
    """Readings after the privacy gateway; each (device, seq) is stored exactly once."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, batches: Iterable[ReadingBatch]) -> int:
        """Store the batches' readings in one transaction; return how many rows were new."""
        rows: list[ReadingRow] = []
        for batch in batches:
            rows.extend(reading_rows(batch))
        if not rows:
            return 0
        with self._engine.begin() as conn:
            return insert_readings(conn, rows)

    def query(
        self,
        *,
        stream: str | None = None,
        device_id: str | None = None,
        cell: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Readings matching every filter given, newest first."""
        t = schema.readings
        # The fingerprint is the sequence guard's, not part of what a reading says.
        shown = [c for c in t.c if c.name != "fingerprint"]
        q = select(*shown).order_by(t.c.ts.desc(), t.c.id.desc()).limit(limit)
        if stream is not None:
            q = q.where(t.c.stream == stream)
        if device_id is not None:
            q = q.where(t.c.device_id == device_id)
        if cell is not None:
            q = q.where(t.c.cell == cell)
        if since is not None:
            q = q.where(t.c.ts >= since)
        if until is not None:
            q = q.where(t.c.ts < until)
        with self._engine.connect() as conn:
            out = []
            for r in conn.execute(q).mappings():
                row = dict(r)
                row["values"] = orjson.loads(row.pop("payload"))
                out.append(row)
            return out

    def count(self) -> int:
        """How many readings are stored."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.readings)).scalar_one())

    def count_by_stream(self) -> dict[str, int]:
        """How many readings are stored for each stream."""
        t = schema.readings
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.stream, func.count()).group_by(t.c.stream))
            return {stream: int(n) for stream, n in rows}

    def max_seq(self) -> dict[str, int]:
        """The highest stored sequence number of each device (to resume replay protection)."""
        t = schema.readings
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.device_id, func.max(t.c.seq)).group_by(t.c.device_id))
            return {device: int(seq) for device, seq in rows}

    def recall(
        self, device_id: str, window: int, limit: int
    ) -> list[tuple[int, int | None, float]]:
        """What the sequence guard remembered of ``device_id``: its stored readings from the top.

        Rows (seq, fingerprint, received_at), highest first: the ``window`` numbers behind the
        highest stored and the readings received with it (its body, all stamped with one
        ``received_at``), at most ``limit`` rows. One or two index range scans on the unique
        (device_id, seq), once per device and process; the longer only when the last body
        reaches below the window.
        """
        t = schema.readings
        q = (
            select(t.c.seq, t.c.fingerprint, t.c.received_at)
            .where(t.c.device_id == device_id)
            .order_by(t.c.seq.desc())
        )
        with self._engine.connect() as conn:
            rows = conn.execute(q.limit(window + 1)).all()
            if len(rows) == window + 1 and rows[-1][2] == rows[0][2]:
                rows = conn.execute(q.limit(limit)).all()
        if not rows:
            return []
        high, stamp = int(rows[0][0]), float(rows[0][2])
        return [
            (int(seq), None if fp is None else int(fp), float(at))
            for seq, fp, at in rows
            if seq > high - window or at == stamp
        ]


def _insert_new_only(dialect: str) -> Any:
    """An insert of dead letters that skips identities already stored."""
    if dialect == "sqlite":
        return sqlite_insert(schema.dead_letters).on_conflict_do_nothing(
            index_elements=["event_id"]
        )
    if dialect == "postgresql":
        return postgresql_insert(schema.dead_letters).on_conflict_do_nothing(
            index_elements=["event_id"]
        )
    raise NotImplementedError(f"no idempotent dead-letter insert for the {dialect} database")


class DeadLetterRepository:
    """Refused messages with their reasons: nothing sent to the platform is silently lost."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, rejections: Sequence[Rejection]) -> None:
        """Store the rejections; one whose identity is already stored is skipped.

        The event log delivers a refusal again when its consumer stopped between storing and
        acknowledging; skipping a known identity keeps it one dead letter.
        """
        if not rejections:
            return
        with self._engine.begin() as conn:
            conn.execute(
                _insert_new_only(conn.dialect.name),
                [
                    {
                        "received_at": r.received_at,
                        "transport": r.transport.value,
                        "reason": r.reason.value,
                        "detail": r.detail,
                        "device_id": r.device_id,
                        "stream": r.stream,
                        "seq": r.seq,
                        "idx": r.index,
                        "payload": r.payload.decode("utf-8", errors="replace"),
                        "event_id": r.id,
                    }
                    for r in rejections
                ],
            )

    def query(self, *, reason: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters, newest first."""
        t = schema.dead_letters
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if reason is not None:
            q = q.where(t.c.reason == reason)
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def count_by_stream(self) -> dict[str | None, dict[str, int]]:
        """How many dead letters there are for each stream (None: no stream) and reason."""
        t = schema.dead_letters
        out: dict[str | None, dict[str, int]] = {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.c.stream, t.c.reason, func.count()).group_by(t.c.stream, t.c.reason)
            )
            for stream, reason, n in rows:
                out.setdefault(stream, {})[reason] = int(n)
        return out

    def count_by_reason(self) -> dict[str, int]:
        """How many dead letters there are for each reason."""
        t = schema.dead_letters
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.reason, func.count()).group_by(t.c.reason))
            return {reason: int(n) for reason, n in rows}


class AlertRepository:
    """Alerts as detectors raised them, with their evidence."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, alerts: Sequence[Alert]) -> None:
        """Store new alerts."""
        if not alerts:
            return
        with self._engine.begin() as conn:
            conn.execute(insert(schema.alerts), [_alert_row(a) for a in alerts])

    def query(
        self,
        *,
        since: float | None = None,
        severity: str | None = None,
        stream: str | None = None,
        incident_id: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts matching every filter given, newest first."""
        t = schema.alerts
        q = select(t).order_by(t.c.created_at.desc()).limit(limit)
        if since is not None:
            q = q.where(t.c.created_at >= since)
        if severity is not None:
            q = q.where(t.c.severity == severity)
        if stream is not None:
            q = q.where(t.c.stream == stream)
        if incident_id is not None:
            q = q.where(t.c.incident_id == incident_id)
        with self._engine.connect() as conn:
            return [_alert(r) for r in conn.execute(q).mappings()]

    def get(self, alert_id: str) -> Alert | None:
        """The alert with ``alert_id``, if any."""
        t = schema.alerts
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == alert_id)).mappings().first()
            return _alert(row) if row else None


def _alert_row(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "created_at": a.created_at,
        "ts": a.ts,
        "detector": a.detector,
        "kind": a.kind,
        "severity": a.severity.value,
        "title": a.title,
        "stream": a.stream,
        "device_id": a.device_id,
        "cell": a.cell,
        "lat": a.lat,
        "lon": a.lon,
        "evidence": a.evidence,
        "incident_id": a.incident_id,
        "explanation": a.explanation,
    }


def _alert(r: Any) -> Alert:
    return Alert(
        id=r["id"],
        created_at=r["created_at"],
        ts=r["ts"],
        detector=r["detector"],
        kind=r["kind"],
        severity=Severity(r["severity"]),
        title=r["title"],
        stream=r["stream"],
        device_id=r["device_id"],
        cell=r["cell"],
        lat=r["lat"],
        lon=r["lon"],
        evidence=r["evidence"],
        incident_id=r["incident_id"],
        explanation=r["explanation"],
    )


class IncidentRepository:
    """Incidents and their life cycle."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert(self, incident: Incident) -> None:
        """Store ``incident``, replacing the stored copy if there is one."""
        row = _incident_row(incident)
        t = schema.incidents
        with self._engine.begin() as conn:
            done = conn.execute(update(t).where(t.c.id == incident.id).values(**row)).rowcount
            if not done:
                conn.execute(insert(t).values(**row))

    def get(self, incident_id: str) -> Incident | None:
        """The incident with ``incident_id``, if any."""
        t = schema.incidents
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == incident_id)).mappings().first()
            return _incident(row) if row else None

    def query(self, *, status: str | None = None, limit: int = 100) -> list[Incident]:
        """Incidents, newest first."""
        t = schema.incidents
        q = select(t).order_by(t.c.opened_at.desc()).limit(limit)
        if status is not None:
            q = q.where(t.c.status == status)
        with self._engine.connect() as conn:
            return [_incident(r) for r in conn.execute(q).mappings()]

    def unresolved(self) -> list[Incident]:
        """Every incident not yet resolved."""
        t = schema.incidents
        q = select(t).where(t.c.status != IncidentStatus.RESOLVED.value)
        with self._engine.connect() as conn:
            return [_incident(r) for r in conn.execute(q).mappings()]


def _incident_row(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "opened_at": i.opened_at,
        "updated_at": i.updated_at,
        "status": i.status.value,
        "severity": i.severity,
        "title": i.title,
        "cell": i.cell,
        "district": i.district,
        "alert_count": i.alert_count,
        "acknowledged_by": i.acknowledged_by,
        "acknowledged_at": i.acknowledged_at,
        "resolved_by": i.resolved_by,
        "resolved_at": i.resolved_at,
        "note": i.note,
        "group_key": i.group_key,
    }


def _incident(r: Any) -> Incident:
    return Incident(
        id=r["id"],
        opened_at=r["opened_at"],
        updated_at=r["updated_at"],
        status=IncidentStatus(r["status"]),
        severity=r["severity"],
        title=r["title"],
        cell=r["cell"],
        district=r["district"],
        alert_count=r["alert_count"],
        acknowledged_by=r["acknowledged_by"],
        acknowledged_at=r["acknowledged_at"],
        resolved_by=r["resolved_by"],
        resolved_at=r["resolved_at"],
        note=r["note"],
        group_key=r["group_key"],
    )


class UserRepository:
    """Staff accounts: username, password hash and role."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, username: str, password_hash: str, role: str, created_at: float) -> None:
        """Create a staff account; ``ValueError`` if the name is taken."""
        t = schema.users
        with self._engine.begin() as conn:
            if conn.execute(select(t.c.username).where(t.c.username == username)).first():
                raise ValueError(f"user {username!r} already exists")
            conn.execute(
                insert(t).values(
                    username=username, password_hash=password_hash, role=role, created_at=created_at
                )
            )

    def get(self, username: str) -> dict[str, Any] | None:
        """The account called ``username``, if any."""
        t = schema.users
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.username == username)).mappings().first()
            return dict(row) if row else None

    def all(self) -> list[dict[str, Any]]:
        """Every account, without password hashes."""
        t = schema.users
        with self._engine.connect() as conn:
            q = select(t.c.username, t.c.role, t.c.created_at, t.c.disabled).order_by(t.c.username)
            return [dict(r) for r in conn.execute(q).mappings()]


class Store:
    """Every repository over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.devices = DeviceRepository(engine)
        self.readings = ReadingRepository(engine)
        self.dead_letters = DeadLetterRepository(engine)
        self.alerts = AlertRepository(engine)
        self.marks = AlertMarkRepository(engine)
        self.incidents = IncidentRepository(engine)
        self.users = UserRepository(engine)


class AlertMarkRepository:
    """Operators' true/false verdicts on alerts, append-only; the latest per alert counts."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, mark: AlertMark) -> None:
        """Store one verdict."""
        with self._engine.begin() as conn:
            conn.execute(
                insert(schema.alert_marks),
                {
                    "alert_id": mark.alert_id,
                    "detector": mark.detector,
                    "kind": mark.kind,
                    "verdict": mark.verdict.value,
                    "marked_by": mark.marked_by,
                    "marked_at": mark.marked_at,
                    "note": mark.note,
                },
            )

    def query(
        self, *, alert_id: str | None = None, detector: str | None = None, limit: int = 1000
    ) -> list[AlertMark]:
        """Marks matching every filter given, newest first."""
        t = schema.alert_marks
        q = select(t).order_by(t.c.marked_at.desc(), t.c.id.desc()).limit(limit)
        if alert_id is not None:
            q = q.where(t.c.alert_id == alert_id)
        if detector is not None:
            q = q.where(t.c.detector == detector)
        with self._engine.connect() as conn:
            return [_mark(r) for r in conn.execute(q).mappings()]

    def latest(self) -> list[AlertMark]:
        """The latest mark of every marked alert (a later mark overrules an earlier one)."""
        t = schema.alert_marks
        q = select(t).order_by(t.c.marked_at, t.c.id)
        newest: dict[str, AlertMark] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(q).mappings():
                mark = _mark(row)
                newest[mark.alert_id] = mark
        return list(newest.values())

    def alerts_by_detector(self) -> dict[str, int]:
        """How many stored alerts each detector has raised (the denominator of marking)."""
        t = schema.alerts
        q = select(t.c.detector, func.count()).group_by(t.c.detector)
        with self._engine.connect() as conn:
            return {str(d): int(n) for d, n in conn.execute(q)}


def _mark(r: Any) -> AlertMark:
    return AlertMark(
        alert_id=r["alert_id"],
        detector=r["detector"],
        kind=r["kind"],
        verdict=Verdict(r["verdict"]),
        marked_by=r["marked_by"],
        marked_at=r["marked_at"],
        note=r["note"],
    )

"""The SQL of data lifecycle: key events, retention deletes and the record of retention runs.

Each delete takes a cutoff in Unix seconds computed by the retention policy
(:mod:`civicguard.privacy.retention`); this module only knows tables and columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from civicguard.store import schema

CREATED = "created"
DESTROYED = "destroyed"


class KeyEventRepository:
    """When pseudonym keys were created and destroyed, by name; never the key bytes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self, name: str, event: str, at: float, reason: str = "", *, replace: bool = False
    ) -> bool:
        """Record ``event`` for key ``name``; False if that event was already recorded.

        ``replace``: a name that is used again (a subject's key, created afresh after the last
        one was destroyed) keeps only its latest event of each kind; always True.
        """
        if event not in (CREATED, DESTROYED):
            raise ValueError(f"key event must be {CREATED!r} or {DESTROYED!r}, got {event!r}")
        values = {"name": name, "event": event, "at": at, "reason": reason}
        t = schema.key_events
        latest = {"at": at, "reason": reason}
        with self._engine.begin() as conn:
            dialect = conn.dialect.name
            if dialect in ("postgresql", "sqlite"):
                dialect_insert: Any = (
                    postgresql.insert if dialect == "postgresql" else sqlite.insert
                )
                stmt: Any = dialect_insert(t).values(**values)
                stmt = (
                    stmt.on_conflict_do_update(index_elements=[t.c.name, t.c.event], set_=latest)
                    if replace
                    else stmt.on_conflict_do_nothing()
                )
            else:  # pragma: no cover - the platform runs on SQLite or PostgreSQL only
                if conn.execute(select(t.c.id).where(t.c.name == name, t.c.event == event)).first():
                    if replace:
                        conn.execute(
                            update(t).where(t.c.name == name, t.c.event == event).values(latest)
                        )
                    return replace
                stmt = insert(t).values(**values)
            return bool(conn.execute(stmt).rowcount)

    def forget(self, prefix: str, before: float) -> int:
        """Delete the events before ``before`` of keys named ``prefix...``; return how many.

        For keys whose very name is personal data (``subject/<handle>``), so that their record
        has a retention of its own; pseudonym keys' records are never forgotten.
        """
        t = schema.key_events
        with self._engine.begin() as conn:
            result = conn.execute(
                delete(t).where(t.c.name.startswith(prefix, autoescape=True), t.c.at < before)
            )
            return int(result.rowcount)

    def get(self, name: str) -> dict[str, dict[str, Any]]:
        """The events of key ``name``: event kind -> {at, reason}."""
        t = schema.key_events
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.name == name)).mappings()
            return {r["event"]: {"at": r["at"], "reason": r["reason"]} for r in rows}

    def destroyed(self, prefix: str = "") -> set[str]:
        """Names (starting with ``prefix``) of keys whose destruction is recorded."""
        t = schema.key_events
        q = select(t.c.name).where(t.c.event == DESTROYED, t.c.name.startswith(prefix))
        with self._engine.connect() as conn:
            return {name for (name,) in conn.execute(q)}

    def destructions(self, limit: int, *, excluding: str) -> list[dict[str, Any]]:
        """The latest ``limit`` key destructions, newest first, but of keys named ``excluding...``.

        Filtered in the query, so that a burst of excluded destructions (subject keys retired
        together) cannot push the others out of the list.
        """
        t = schema.key_events
        q = (
            select(t)
            .where(t.c.event == DESTROYED, ~t.c.name.startswith(excluding, autoescape=True))
            .order_by(t.c.at.desc(), t.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


class RetentionRepository:
    """Deletes (and scrubs) records older than a cutoff; each call returns rows affected."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _by_stream(
        self, table: Any, time_column: str, cutoffs: Mapping[str, float], others: float | None
    ) -> int:
        """Delete rows of each stream older than its cutoff; rows of other streams (or none)
        older than ``others`` when it is given."""
        removed = 0
        when = table.c[time_column]
        with self._engine.begin() as conn:
            for stream, cutoff in cutoffs.items():
                result = conn.execute(delete(table).where(table.c.stream == stream, when < cutoff))
                removed += result.rowcount
            if others is not None:
                known = list(cutoffs)
                result = conn.execute(
                    delete(table).where(
                        or_(table.c.stream.is_(None), table.c.stream.not_in(known)),
                        when < others,
                    )
                )
                removed += result.rowcount
        return removed

    def delete_readings(self, cutoffs: Mapping[str, float]) -> int:
        """Delete readings of each stream whose timestamp is before the stream's cutoff."""
        return self._by_stream(schema.readings, "ts", cutoffs, None)

    def delete_alerts(self, cutoffs: Mapping[str, float], others: float) -> int:
        """Delete alerts (with their evidence) older than their stream's cutoff."""
        return self._by_stream(schema.alerts, "ts", cutoffs, others)

    def delete_dead_letters(self, cutoffs: Mapping[str, float], others: float) -> int:
        """Delete dead letters received before their stream's cutoff (``others``: no stream)."""
        return self._by_stream(schema.dead_letters, "received_at", cutoffs, others)

    def delete_alert_marks(self, cutoff: float) -> int:
        """Delete operators' verdicts given before ``cutoff``."""
        t = schema.alert_marks
        with self._engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.marked_at < cutoff)).rowcount

    def scrub_orphaned_incidents(self) -> int:
        """Blank the personal fields of incidents none of whose alerts is left.

        The note and the staff who acknowledged or resolved go; the skeleton (times, status,
        severity, title, cell, district, alert count) stays for statistics.
        """
        i, a = schema.incidents, schema.alerts
        personal = or_(
            i.c.note != "", i.c.acknowledged_by.is_not(None), i.c.resolved_by.is_not(None)
        )
        orphaned = ~exists(select(a.c.id).where(a.c.incident_id == i.c.id))
        stmt = (
            update(i)
            .where(and_(personal, orphaned))
            .values(note="", acknowledged_by=None, resolved_by=None)
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount


class RetentionRunRepository:
    """The record of what each retention sweep removed."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, at: float, removed: Iterable[tuple[str, int]]) -> None:
        """Store one sweep's counts per target."""
        rows = [{"at": at, "target": target, "removed": n} for target, n in removed]
        if not rows:
            return
        with self._engine.begin() as conn:
            conn.execute(insert(schema.retention_runs), rows)

    def totals(self) -> dict[str, int]:
        """Everything removed so far, per target."""
        t = schema.retention_runs
        q = select(t.c.target, func.sum(t.c.removed)).group_by(t.c.target)
        with self._engine.connect() as conn:
            return {target: int(n or 0) for target, n in conn.execute(q)}

    def latest(self) -> tuple[float, dict[str, int]] | None:
        """When the last sweep ran and what it removed per target; None if none ran."""
        at = self.last()
        if at is None:
            return None
        t = schema.retention_runs
        q = select(t.c.target, t.c.removed).where(t.c.at == at).order_by(t.c.id)
        with self._engine.connect() as conn:
            return at, {target: int(n) for target, n in conn.execute(q)}

    def last(self) -> float | None:
        """When the last sweep ran, if one did."""
        t = schema.retention_runs
        with self._engine.connect() as conn:
            value = conn.execute(select(func.max(t.c.at))).scalar_one()
            return float(value) if value is not None else None

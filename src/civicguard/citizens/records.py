"""The SQL of the citizens package: consents, receipts, subjects, subject requests, reports.

Like ``store.repositories`` (the rest of the platform's SQL), each class writes and reads one
kind of record. Subjects appear only as handles; sealed columns hold AES-GCM ciphertext.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, union, update
from sqlalchemy.dialects import postgresql, sqlite

from civicguard.citizens.ledger import Erasure
from civicguard.store import schema

#: The tables whose rows name a subject by handle; while one does, the subject's key stays.
SUBJECT_LINKED = (
    schema.consents,
    schema.consent_receipts,
    schema.subject_requests,
    schema.citizen_reports,
)


@contextmanager
def _begin(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    """``conn`` if the caller has a transaction open on it, else a new transaction."""
    if conn is not None:
        yield conn
        return
    with engine.begin() as fresh:
        yield fresh


@dataclass(frozen=True, slots=True)
class ConsentSpan:
    """One purpose consented to, from ``granted_at`` until ``withdrawn_at`` (None: still)."""

    purpose: str
    granted_at: float
    withdrawn_at: float | None
    #: The receipt of the grant (an erasure names the receipts it removed).
    grant_receipt: str = ""

    def covers(self, ts: float, received_at: float) -> bool:
        """True if a reading taken at ``ts`` and received at ``received_at`` falls under it."""
        if self.granted_at > ts:
            return False
        end = self.withdrawn_at
        return end is None or (ts < end and received_at < end)


class ConsentRepository:
    """Consent spans and the receipts that record each grant and withdrawal."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def grant(
        self,
        subject: str,
        stream: str,
        purposes: Sequence[str],
        at: float,
        receipt: str,
        conn: Connection | None = None,
    ) -> list[str]:
        """Open a span for each purpose not already consented to (in ``conn``'s transaction);
        return those purposes."""
        t = schema.consents
        with _begin(self._engine, conn) as tx:
            open_now = set(
                tx.execute(
                    select(t.c.purpose).where(
                        t.c.subject == subject, t.c.stream == stream, t.c.withdrawn_at.is_(None)
                    )
                ).scalars()
            )
            new = [p for p in purposes if p not in open_now]
            if new:
                tx.execute(
                    insert(t),
                    [
                        {
                            "subject": subject,
                            "stream": stream,
                            "purpose": p,
                            "granted_at": at,
                            "grant_receipt": receipt,
                        }
                        for p in new
                    ],
                )
            return new

    def withdraw(
        self,
        subject: str,
        stream: str,
        purposes: Sequence[str] | None,
        at: float,
        receipt: str,
        conn: Connection | None = None,
    ) -> list[str]:
        """Close the open spans of ``purposes`` (None: all; in ``conn``'s transaction); return
        the purposes closed."""
        t = schema.consents
        where = [t.c.subject == subject, t.c.stream == stream, t.c.withdrawn_at.is_(None)]
        if purposes is not None:
            where.append(t.c.purpose.in_(list(purposes)))
        with _begin(self._engine, conn) as tx:
            closed = sorted(set(tx.execute(select(t.c.purpose).where(*where)).scalars()))
            if closed:
                tx.execute(
                    update(t).where(*where).values(withdrawn_at=at, withdraw_receipt=receipt)
                )
            return closed

    def spans(self, subjects: Iterable[str], stream: str) -> dict[str, list[ConsentSpan]]:
        """Every span of ``subjects`` for ``stream``, in one query."""
        wanted = list(set(subjects))
        out: dict[str, list[ConsentSpan]] = {s: [] for s in wanted}
        if not wanted:
            return out
        t = schema.consents
        q = select(
            t.c.subject, t.c.purpose, t.c.granted_at, t.c.withdrawn_at, t.c.grant_receipt
        ).where(t.c.stream == stream, t.c.subject.in_(wanted))
        with self._engine.connect() as conn:
            for subject, purpose, granted, withdrawn, receipt in conn.execute(q):
                out[subject].append(ConsentSpan(purpose, granted, withdrawn, receipt))
        return out

    def of_subject(self, subject: str) -> list[dict[str, Any]]:
        """Every consent span of ``subject``, oldest first."""
        t = schema.consents
        q = select(t).where(t.c.subject == subject).order_by(t.c.granted_at, t.c.id)
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def add_receipt(
        self,
        receipt_id: str,
        subject: str,
        stream: str,
        action: str,
        at: float,
        sealed: bytes,
        conn: Connection | None = None,
    ) -> None:
        """Keep the sealed record copy of a receipt (in ``conn``'s transaction if given)."""
        with _begin(self._engine, conn) as tx:
            tx.execute(
                insert(schema.consent_receipts).values(
                    id=receipt_id,
                    subject=subject,
                    stream=stream,
                    action=action,
                    issued_at=at,
                    document_sealed=sealed,
                )
            )

    def receipts(self, subject: str) -> list[dict[str, Any]]:
        """The receipts of ``subject`` (sealed), oldest first."""
        t = schema.consent_receipts
        q = select(t).where(t.c.subject == subject).order_by(t.c.issued_at, t.c.id)
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def delete_withdrawn(self, before: float) -> int:
        """Delete consent spans withdrawn before ``before``; spans still in force stay."""
        t = schema.consents
        with self._engine.begin() as conn:
            return int(
                conn.execute(
                    delete(t).where(t.c.withdrawn_at.is_not(None), t.c.withdrawn_at < before)
                ).rowcount
            )

    def delete_unbacked_receipts(self, before: float) -> int:
        """Delete receipts issued before ``before`` that no remaining consent span names."""
        r, c = schema.consent_receipts, schema.consents
        named = union(
            select(c.c.grant_receipt),
            select(c.c.withdraw_receipt).where(c.c.withdraw_receipt.is_not(None)),
        )
        with self._engine.begin() as conn:
            return int(
                conn.execute(delete(r).where(r.c.issued_at < before, r.c.id.not_in(named))).rowcount
            )

    def receipt_ids(self, subject: str, conn: Connection) -> frozenset[str]:
        """The ids of every receipt of ``subject`` (in ``conn``'s transaction)."""
        t = schema.consent_receipts
        return frozenset(
            str(i) for i in conn.execute(select(t.c.id).where(t.c.subject == subject)).scalars()
        )

    def delete_erased(self, erasure: Erasure, conn: Connection) -> int:
        """Delete the spans and receipts of ``erasure``'s generation of its subject (in
        ``conn``'s transaction): those dated before it, or that it removed by id."""
        c, r = schema.consents, schema.consent_receipts
        ids = sorted(erasure.receipts)
        n = conn.execute(
            delete(c).where(
                c.c.subject == erasure.handle,
                or_(c.c.granted_at < erasure.at, c.c.grant_receipt.in_(ids)),
            )
        ).rowcount
        n += conn.execute(
            delete(r).where(
                r.c.subject == erasure.handle, or_(r.c.issued_at < erasure.at, r.c.id.in_(ids))
            )
        ).rowcount
        return int(n)

    def delete_subject(self, subject: str, conn: Connection | None = None) -> int:
        """Delete every consent span and receipt of ``subject`` (in ``conn``'s transaction);
        return the rows removed."""
        with _begin(self._engine, conn) as tx:
            n = tx.execute(
                delete(schema.consents).where(schema.consents.c.subject == subject)
            ).rowcount
            n += tx.execute(
                delete(schema.consent_receipts).where(schema.consent_receipts.c.subject == subject)
            ).rowcount
            return int(n)


class SubjectRepository:
    """Subjects known by handle, and when each was erased.

    The subject's row is also the lock that keeps sealing and key destruction apart: whoever
    seals under a subject's key and keeps the result, and whoever destroys that key, does so
    inside :meth:`held` (see :mod:`civicguard.citizens.vault`).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def held(self, handle: str, at: float) -> Iterator[Connection]:
        """A transaction that holds ``handle``'s row (recorded, first seen at ``at``, if new).

        Its first statement is an upsert that writes the row: PostgreSQL locks the row (a
        concurrent upsert of the same handle waits, and inserts afresh if this transaction
        deleted it), SQLite takes the database's write lock. Either way no two ``held``
        transactions of one handle overlap, and every read inside sees what was committed
        before the lock was granted. Write nothing through another connection meanwhile: on
        SQLite it would wait for this very lock.
        """
        t = schema.subjects
        with self._engine.begin() as conn:
            values = {"handle": handle, "first_seen": at}
            keep = {"first_seen": t.c.first_seen}  # an update that changes nothing, but locks
            dialect = conn.dialect.name
            if dialect == "postgresql":
                stmt: Any = postgresql.insert(t).values(**values)
                conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.handle], set_=keep))
            elif dialect == "sqlite":
                stmt = sqlite.insert(t).values(**values)
                conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.handle], set_=keep))
            elif not conn.execute(update(t).where(t.c.handle == handle).values(keep)).rowcount:
                conn.execute(insert(t).values(**values))  # pragma: no cover - other databases
            yield conn

    def restart(self, conn: Connection, handle: str, at: float) -> None:
        """A subject erased before starts over at ``at`` (inside :meth:`held`)."""
        t = schema.subjects
        conn.execute(
            update(t)
            .where(t.c.handle == handle, t.c.erased_at.is_not(None))
            .values(first_seen=at, erased_at=None)
        )

    def in_use(self, conn: Connection, handle: str) -> bool:
        """True if a consent, receipt, request or report of ``handle`` is left."""
        return any(
            conn.execute(select(t.c.subject).where(t.c.subject == handle).limit(1)).first()
            for t in SUBJECT_LINKED
        )

    def handles_in_use(self) -> set[str]:
        """Every handle that a consent, receipt, request or report still names."""
        q = union(*(select(t.c.subject).where(t.c.subject.is_not(None)) for t in SUBJECT_LINKED))
        with self._engine.connect() as conn:
            return {str(h) for (h,) in conn.execute(q)}

    def remembered(self) -> set[str]:
        """Handles of the subjects recorded and not erased."""
        t = schema.subjects
        with self._engine.connect() as conn:
            return set(conn.execute(select(t.c.handle).where(t.c.erased_at.is_(None))).scalars())

    def forget(self, conn: Connection, handle: str) -> bool:
        """Delete ``handle``'s row unless it records an erasure; True if it went."""
        t = schema.subjects
        done = conn.execute(delete(t).where(t.c.handle == handle, t.c.erased_at.is_(None)))
        return bool(done.rowcount)

    def ensure(self, handle: str, at: float) -> None:
        """Record ``handle`` if it is new (a subject erased before starts over)."""
        t = schema.subjects
        with self._engine.begin() as conn:
            row = conn.execute(select(t.c.erased_at).where(t.c.handle == handle)).first()
            if row is None:
                conn.execute(insert(t).values(handle=handle, first_seen=at))
            elif row[0] is not None:
                conn.execute(
                    update(t).where(t.c.handle == handle).values(first_seen=at, erased_at=None)
                )

    def mark_erased(self, handle: str, at: float, conn: Connection | None = None) -> None:
        """Record that ``handle``'s key was destroyed at ``at`` (in ``conn``'s transaction)."""
        t = schema.subjects
        with _begin(self._engine, conn) as tx:
            done = tx.execute(update(t).where(t.c.handle == handle).values(erased_at=at))
            if not done.rowcount:
                tx.execute(insert(t).values(handle=handle, first_seen=at, erased_at=at))

    def mark_erased_again(self, erasure: Erasure, conn: Connection, *, restore: bool) -> int:
        """Record ``erasure`` on a restored database, unless the subject's row already says so
        or shows them back since (first seen after it); a missing row is written again only
        if ``restore``. 1 if the row changed, else 0."""
        t = schema.subjects
        row = conn.execute(
            select(t.c.first_seen, t.c.erased_at).where(t.c.handle == erasure.handle)
        ).first()
        if row is None:
            if not restore:
                return 0
            conn.execute(
                insert(t).values(handle=erasure.handle, first_seen=erasure.at, erased_at=erasure.at)
            )
            return 1
        first_seen, erased_at = row
        back = first_seen > erasure.at or (first_seen == erasure.at and not restore)
        if back or (erased_at is not None and erased_at >= erasure.at):
            return 0  # the subject came back after it (in its very second, with nothing old)
        conn.execute(update(t).where(t.c.handle == erasure.handle).values(erased_at=erasure.at))
        return 1

    def counts(self) -> dict[str, int]:
        """How many subjects are known, and how many of them were erased."""
        t = schema.subjects
        q = select(func.count(), func.count(t.c.erased_at))
        with self._engine.connect() as conn:
            known, erased = conn.execute(q).one()
        return {"known": int(known), "erased": int(erased)}

    def delete_erased(self, before: float) -> int:
        """Forget subjects erased before ``before`` (the record of the erasure goes too)."""
        t = schema.subjects
        with self._engine.begin() as conn:
            return int(
                conn.execute(
                    delete(t).where(t.c.erased_at.is_not(None), t.c.erased_at < before)
                ).rowcount
            )

    def get(self, handle: str) -> dict[str, Any] | None:
        """The subject's record, if any."""
        t = schema.subjects
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.handle == handle)).mappings().first()
            return dict(row) if row else None


class RequestRepository:
    """Subject requests (export, erasure) and their status."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, row: dict[str, Any], conn: Connection | None = None) -> None:
        """Store a new request (in ``conn``'s transaction if given)."""
        with _begin(self._engine, conn) as tx:
            tx.execute(insert(schema.subject_requests).values(**row))

    def finish(self, request_id: str, at: float, by: str) -> bool:
        """Mark a pending request done; False if there is no such pending request."""
        t = schema.subject_requests
        with self._engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.id == request_id, t.c.status == "pending")
                .values(status="done", done_at=at, done_by=by, citizen_sealed=None)
            )
            return bool(result.rowcount)

    def settle_erased(self, erasure: Erasure, conn: Connection, *, restore: bool) -> int:
        """Bring ``erasure``'s requests back to what they were after it, on a restored database
        (in ``conn``'s transaction): its erasure request done (written again if missing and
        ``restore``), no sealed citizen id of the subject from before it. Returns the rows
        changed."""
        t = schema.subject_requests
        changed = conn.execute(
            update(t)
            .where(
                t.c.subject == erasure.handle,
                t.c.requested_at <= erasure.at,
                t.c.citizen_sealed.is_not(None),
            )
            .values(citizen_sealed=None)
        ).rowcount
        for rid in erasure.requests:
            status = conn.execute(select(t.c.status).where(t.c.id == rid)).scalar()
            if status == "done":
                continue
            if status is not None:
                done = {"status": "done", "done_at": erasure.at, "done_by": erasure.by}
                changed += conn.execute(update(t).where(t.c.id == rid).values(done)).rowcount
                continue
            if not restore:
                continue
            conn.execute(
                insert(t).values(
                    id=rid,
                    subject=erasure.handle,
                    kind="erasure",
                    status="done",
                    requested_at=erasure.at,
                    requested_by=erasure.by,
                    done_at=erasure.at,
                    done_by=erasure.by,
                )
            )
            changed += 1
        return int(changed)

    def forget_citizen(self, subject: str, conn: Connection | None = None) -> int:
        """Drop the sealed citizen id of every request of ``subject`` (in ``conn``'s
        transaction); return how many."""
        t = schema.subject_requests
        with _begin(self._engine, conn) as tx:
            result = tx.execute(
                update(t)
                .where(t.c.subject == subject, t.c.citizen_sealed.is_not(None))
                .values(citizen_sealed=None)
            )
            return int(result.rowcount)

    def delete_done(self, before: float) -> int:
        """Delete requests done before ``before``; pending ones always stay."""
        t = schema.subject_requests
        with self._engine.begin() as conn:
            return int(
                conn.execute(
                    delete(t).where(
                        t.c.status == "done", t.c.done_at.is_not(None), t.c.done_at < before
                    )
                ).rowcount
            )

    def get(self, request_id: str) -> dict[str, Any] | None:
        """The request with ``request_id``, if any."""
        t = schema.subject_requests
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == request_id)).mappings().first()
            return dict(row) if row else None

    def query(
        self, *, status: str | None = None, subject: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Requests, oldest first (the order a DPO works through them)."""
        t = schema.subject_requests
        q = select(t).order_by(t.c.requested_at, t.c.id).limit(limit)
        if status is not None:
            q = q.where(t.c.status == status)
        if subject is not None:
            q = q.where(t.c.subject == subject)
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


class ReportRepository:
    """Citizen reports after scrubbing."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, row: dict[str, Any], conn: Connection | None = None) -> None:
        """Store a new report (in ``conn``'s transaction if given)."""
        with _begin(self._engine, conn) as tx:
            tx.execute(insert(schema.citizen_reports).values(**row))

    def query(
        self, *, since: float | None = None, subject: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Reports, newest first."""
        t = schema.citizen_reports
        q = select(t).order_by(t.c.received_at.desc(), t.c.id).limit(limit)
        if since is not None:
            q = q.where(t.c.received_at >= since)
        if subject is not None:
            q = q.where(t.c.subject == subject)
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def delete_older(self, before: float) -> int:
        """Delete reports received before ``before``; return how many."""
        t = schema.citizen_reports
        with self._engine.begin() as conn:
            return int(conn.execute(delete(t).where(t.c.received_at < before)).rowcount)

    def ids_of(self, subject: str, conn: Connection) -> frozenset[str]:
        """The ids of the reports ``subject`` filed (in ``conn``'s transaction)."""
        t = schema.citizen_reports
        return frozenset(
            str(i) for i in conn.execute(select(t.c.id).where(t.c.subject == subject)).scalars()
        )

    def delete_erased(self, erasure: Erasure, conn: Connection) -> int:
        """Delete the reports of ``erasure``'s generation of its subject (in ``conn``'s
        transaction): received before it, or removed by it."""
        t = schema.citizen_reports
        done = conn.execute(
            delete(t).where(
                t.c.subject == erasure.handle,
                or_(t.c.received_at < erasure.at, t.c.id.in_(sorted(erasure.reports))),
            )
        )
        return int(done.rowcount)

    def delete_subject(self, subject: str, conn: Connection | None = None) -> int:
        """Delete the reports ``subject`` filed (in ``conn``'s transaction); return how many."""
        t = schema.citizen_reports
        with _begin(self._engine, conn) as tx:
            return int(tx.execute(delete(t).where(t.c.subject == subject)).rowcount)


class CitizenRecords:
    """Every repository of the citizens package over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.consents = ConsentRepository(engine)
        self.subjects = SubjectRepository(engine)
        self.requests = RequestRepository(engine)
        self.reports = ReportRepository(engine)

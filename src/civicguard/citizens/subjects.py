"""Subject rights: export everything linked to a subject, erase it by crypto-shredding.

Requests are recorded (``pending`` until done) so that the DPO sees what is waiting. An export
lists every item linked to the subject with the purpose it is kept for and how long; erasure
records itself in the erasure ledger beside the keys (:mod:`civicguard.citizens.ledger`), then
destroys the subject's key (so every sealed copy, backups included, is unreadable at once),
then deletes the subject's rows, and records that it happened under the handle only. After a
restore, :meth:`SubjectRights.reapply` deletes again what the ledger says an erasure deleted;
the export leaves out whatever an erasure covers even if it was not re-applied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Connection

from civicguard.catalog.model import Catalog
from civicguard.citizens.consent import receipt_context
from civicguard.citizens.handles import SubjectIndex
from civicguard.citizens.ledger import Erasure, ErasureLedger
from civicguard.citizens.readings import SubjectReadings
from civicguard.citizens.records import CitizenRecords
from civicguard.citizens.reports import report_context
from civicguard.citizens.vault import SubjectVault
from civicguard.clock import Clock


class RequestKind(StrEnum):
    """What a subject asks for."""

    EXPORT = "export"
    ERASURE = "erasure"


@dataclass(frozen=True, slots=True, kw_only=True)
class Keeping:
    """Why a kind of subject-linked record is kept, and for how long."""

    purpose: str
    retention: str


#: Records that no catalog stream describes: why the platform keeps them and for how long.
KEEPING: dict[str, Keeping] = {
    "consent_receipt": Keeping(
        purpose="proof_of_consent: show which consent was given or withdrawn, and when "
        "(GDPR Art. 7(1))",
        retention="while it backs a consent in force, then the catalog's retention.consent_proof;"
        " or until the subject is erased",
    ),
    "citizen_report": Keeping(
        purpose="citizen_reports: fix what residents report in public space",
        retention="the catalog's retention.citizen_reports from arrival, or until the subject "
        "is erased",
    ),
    "subject_request": Keeping(
        purpose="subject_rights: show that requests were handled (GDPR Art. 12)",
        retention="until done, then the catalog's retention.subject_requests (under the handle "
        "only after erasure)",
    ),
}


@dataclass(frozen=True, slots=True)
class Reapplied:
    """What re-applying the erasures of the ledger to a restored database did."""

    #: Erasures that found something of theirs in the database (the others were in it).
    erasures: int
    #: Rows deleted or put back as they were after the erasure.
    rows: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureReport:
    """What an erasure did."""

    request_id: str
    subject: str
    key_destroyed: bool
    rows_deleted: int


def request_context(request_id: str) -> str:
    """The AES-GCM associated data that binds a request's sealed citizen id to its row."""
    return f"subject-request:{request_id}"


def public_request(row: dict[str, Any]) -> dict[str, Any]:
    """A request as the DPO sees it: everything but the sealed citizen id."""
    return {k: v for k, v in row.items() if k != "citizen_sealed"}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class SubjectRights:
    """Export and erasure of subject-linked data, and the register of subject requests."""

    def __init__(
        self,
        catalog: Catalog,
        records: CitizenRecords,
        index: SubjectIndex,
        vault: SubjectVault,
        clock: Clock,
        ledger: ErasureLedger,
        readings: SubjectReadings | None = None,
    ) -> None:
        self.catalog = catalog
        self.ledger = ledger
        self.records = records
        self.index = index
        self.vault = vault
        self.clock = clock
        #: The subject's readings on streams that name their subject; None: not searched.
        self.readings = readings

    def request(self, citizen_id: str, kind: RequestKind, by: str) -> dict[str, Any]:
        """Record a pending request of ``kind`` for the subject; return it (without the id).

        The citizen id is kept sealed under the subject's key, so that the DPO can carry the
        request out later (:meth:`fulfil`) while the table itself names only the handle.
        """
        handle = self.index.handle(citizen_id)
        rid = str(uuid.uuid4())
        row = {
            "id": rid,
            "subject": handle,
            "kind": RequestKind(kind).value,
            "status": "pending",
            "requested_at": self.clock.now(),
            "requested_by": by,
        }
        with self.vault.sealing(handle) as box:
            sealed = box.seal(citizen_id.strip().encode(), request_context(rid))
            self.records.requests.add({**row, "citizen_sealed": sealed}, conn=box.conn)
        return row

    def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        """Requests not yet done, oldest first (handles only, never the sealed citizen id)."""
        return [
            public_request(r) for r in self.records.requests.query(status="pending", limit=limit)
        ]

    def _pending(self, handle: str, kind: RequestKind, request_id: str | None) -> list[str]:
        """The given (or every) pending request of ``kind`` of ``handle``; LookupError if the
        given one is not pending."""
        pending: list[str] = [
            str(r["id"])
            for r in self.records.requests.query(status="pending", subject=handle, limit=1000)
            if r["kind"] == kind.value and (request_id is None or r["id"] == request_id)
        ]
        if request_id is not None and not pending:
            raise LookupError(f"no pending {kind.value} request {request_id!r} of this subject")
        return pending

    def _settle(
        self,
        handle: str,
        kind: RequestKind,
        by: str,
        request_id: str | None,
        new_id: str | None = None,
    ) -> str:
        """Mark the given (or every pending) request of ``kind`` done; record one (``new_id``)
        if none was pending."""
        now = self.clock.now()
        pending = self._pending(handle, kind, request_id)
        for rid in pending:
            self.records.requests.finish(rid, now, by)
        if pending:
            return pending[0]
        rid = new_id or str(uuid.uuid4())
        self.records.requests.add(
            {
                "id": rid,
                "subject": handle,
                "kind": kind.value,
                "status": "done",
                "requested_at": now,
                "requested_by": by,
                "done_at": now,
                "done_by": by,
            }
        )
        return rid

    def export(self, citizen_id: str, by: str, request_id: str | None = None) -> dict[str, Any]:
        """Everything linked to the subject, each item with its purpose and retention."""
        handle = self.index.handle(citizen_id)
        erasure = self.ledger.entries().get(handle)
        items: list[dict[str, Any]] = []
        purposes = {p.name: p.description for p in self.catalog.purposes}
        for span in self.records.consents.of_subject(handle):
            if erasure and erasure.covers_span(span["granted_at"], span["grant_receipt"]):
                continue  # erased; back only through a restore that did not re-apply it
            stream = (
                self.catalog.stream(span["stream"])
                if self.catalog.has_stream(span["stream"])
                else None
            )
            items.append(
                {
                    "kind": "consent",
                    "purpose": f"{span['purpose']}: {purposes.get(span['purpose'], '')}".strip(),
                    "retention": "while in force, then the catalog's retention.consent_proof "
                    "after withdrawal; or until the subject is erased",
                    "data": {
                        "stream": span["stream"],
                        "service": stream.title if stream else span["stream"],
                        "granted_at": _iso(span["granted_at"]),
                        "withdrawn_at": _iso(span["withdrawn_at"]),
                        "readings_retention_days": stream.retention_days if stream else None,
                    },
                }
            )
        for found in self.readings.find(citizen_id) if self.readings else ():
            received_at = found.pop("received_at")
            if erasure and erasure.covers_reading(received_at):
                continue
            reading = found
            stream = self.catalog.stream(reading["stream"])
            items.append(
                {
                    "kind": "reading",
                    "purpose": "; ".join(
                        f"{p}: {purposes.get(p, '')}".strip() for p in stream.purposes
                    ),
                    "retention": f"{stream.retention_days:g} days from the reading "
                    f"(catalog stream {stream.name})",
                    "data": {**reading, "ts": _iso(reading["ts"])},
                }
            )
        keep = KEEPING["consent_receipt"]
        for row in self.records.consents.receipts(handle):
            if erasure and erasure.covers(row["issued_at"], row["id"], erasure.receipts):
                continue
            opened = self.vault.open(
                handle, bytes(row["document_sealed"]), receipt_context(row["id"])
            )
            items.append(
                {
                    "kind": "consent_receipt",
                    "purpose": keep.purpose,
                    "retention": keep.retention,
                    "data": orjson.loads(opened) if opened is not None else None,
                    "readable": opened is not None,
                }
            )
        keep = KEEPING["citizen_report"]
        for row in self.records.reports.query(subject=handle, limit=10_000):
            if erasure and erasure.covers(row["received_at"], row["id"], erasure.reports):
                continue
            sealed = row["text_sealed"]
            text = (
                self.vault.open(handle, bytes(sealed), report_context(row["id"]))
                if sealed is not None
                else row["text"].encode()
            )
            items.append(
                {
                    "kind": "citizen_report",
                    "purpose": keep.purpose,
                    "retention": keep.retention,
                    "data": {
                        "id": row["id"],
                        "received_at": _iso(row["received_at"]),
                        "category": row["category"],
                        "cell": row["cell"],
                        "text": text.decode() if text is not None else None,
                    },
                    "readable": text is not None,
                }
            )
        rid = self._settle(handle, RequestKind.EXPORT, by, request_id)
        keep = KEEPING["subject_request"]
        for row in self.records.requests.query(subject=handle, limit=10_000):
            items.append(
                {
                    "kind": "subject_request",
                    "purpose": keep.purpose,
                    "retention": keep.retention,
                    "data": {
                        "id": row["id"],
                        "kind": row["kind"],
                        "status": row["status"],
                        "requested_at": _iso(row["requested_at"]),
                        "done_at": _iso(row["done_at"]),
                    },
                }
            )
        return {
            "subject": citizen_id.strip(),
            "controller": self.catalog.controller,
            "exported_at": _iso(self.clock.now()),
            "request": rid,
            "items": items,
        }

    def erase(self, citizen_id: str, by: str, request_id: str | None = None) -> ErasureReport:
        """Record the erasure in the ledger, destroy the subject's key, delete their rows,
        record it under the handle only."""
        handle = self.index.handle(citizen_id)
        if request_id is not None:
            request = self.records.requests.get(request_id)
            if request is None or request["subject"] != handle or request["status"] != "pending":
                raise LookupError(f"no pending erasure request {request_id!r} of this subject")
        settled = self._pending(handle, RequestKind.ERASURE, request_id)
        rid = settled[0] if settled else str(uuid.uuid4())
        traces = tuple(self.readings.traces(citizen_id)) if self.readings else ()

        def record(conn: Connection, at: float) -> None:
            # Before the key goes: an erasure the ledger does not know could come back with
            # the next restore. If this fails, nothing is destroyed and the DPO tries again.
            self.ledger.record(
                Erasure(
                    handle=handle,
                    at=at,
                    by=by,
                    receipts=self.records.consents.receipt_ids(handle, conn),
                    reports=self.records.reports.ids_of(handle, conn),
                    requests=(rid, *settled[1:]),
                    readings=traces,
                )
            )

        # The key goes next: from this instant every sealed copy, backups included, is noise.
        # The rows go in the same transaction, which holds the subject: a grant or report of
        # the same citizen arriving meanwhile waits, then starts afresh under a new key.
        with self.vault.shredding(handle, record) as shredded:
            destroyed = shredded.destroyed
            deleted = self.records.consents.delete_subject(handle, shredded.conn)
            deleted += self.records.reports.delete_subject(handle, shredded.conn)
            self.records.requests.forget_citizen(handle, shredded.conn)
        # Readings are not sealed under the subject key (they carry a pseudonym under the
        # stream's keys), and live in their own table: deleted after, on their own.
        deleted += self.readings.delete(citizen_id) if self.readings else 0
        rid = self._settle(handle, RequestKind.ERASURE, by, request_id, new_id=rid)
        return ErasureReport(
            request_id=rid, subject=handle, key_destroyed=destroyed, rows_deleted=deleted
        )

    def reapply(self) -> Reapplied:
        """Re-apply every erasure of the ledger to the database (after a restore).

        Deletes what each erasure deleted (the subject's consents, receipts and reports from
        before it or that it removed, their readings received by then), drops sealed citizen
        ids of older requests, marks its request done and the subject erased. Whatever the
        subject gave after the erasure (they may come back of their own will) stays.
        """
        erasures = rows = 0
        for erasure in sorted(self.ledger.entries().values(), key=lambda e: (e.at, e.handle)):
            found = 0
            if self.readings is not None and erasure.readings:
                found += self.readings.delete_traced(erasure.readings, erasure.at)
            with self.records.engine.begin() as conn:
                found += self.records.consents.delete_erased(erasure, conn)
                found += self.records.reports.delete_erased(erasure, conn)
                # The erasure's own records are put back only beside data it found again:
                # retention forgets them in time, and a restore must not revive them alone.
                kept = self.records.requests.settle_erased(erasure, conn, restore=found > 0)
                kept += self.records.subjects.mark_erased_again(erasure, conn, restore=found > 0)
            erasures += found + kept > 0
            rows += found + kept
        return Reapplied(erasures=erasures, rows=rows)

    def fulfil(self, request_id: str, by: str) -> dict[str, Any]:
        """Carry out a pending request (the DPO's step): the export, or the erasure report."""
        request = self.records.requests.get(request_id)
        if request is None or request["status"] != "pending":
            raise LookupError(f"no pending request {request_id!r}")
        sealed = request.get("citizen_sealed")
        opened = (
            self.vault.open(request["subject"], bytes(sealed), request_context(request_id))
            if sealed is not None
            else None
        )
        if opened is None:
            raise LookupError(f"request {request_id!r}: the subject's id can no longer be read")
        citizen_id = opened.decode()
        if request["kind"] == RequestKind.EXPORT.value:
            return self.export(citizen_id, by, request_id)
        report = self.erase(citizen_id, by, request_id)
        return {
            "request": report.request_id,
            "subject": report.subject,
            "key_destroyed": report.key_destroyed,
            "rows_deleted": report.rows_deleted,
        }

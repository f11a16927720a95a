"""Retention targets of the citizens' records, with durations from the catalog's ``retention``.

- ``consents``: a consent span stays while in force and ``consent_proof`` after its withdrawal
  (proof that processing had a basis, GDPR Art. 7(1));
- ``consent_receipts``: a receipt stays while a remaining span names it, and at least
  ``consent_proof`` after it was issued (so a no-op grant's receipt also ages out);
- ``subject_requests``: done requests ``subject_requests`` after they were done; pending ones
  stay until carried out;
- ``erased_subjects``: the record that a subject was erased, or that their key was destroyed
  by ``subject_keys``, ``subject_requests`` after it;
- ``citizen_reports``: reports ``citizen_reports`` after they arrived, named or anonymous;
- ``subject_keys``: a subject's key ``subject/<handle>`` once no consent, receipt, request or
  report of theirs is left (runs last, after those aged out). The key store would otherwise
  still say "this person was here" long after everything they gave had gone. The destruction
  goes to ``key_events`` (the name only) and the subject's row goes with the key. A later
  grant, report or request of the same citizen simply creates a fresh key.

Readings do not hold a subject's key: none is sealed under it. The safety app's readings carry
the citizen only as a pseudonym under the stream's rotating keys, found from the citizen id
(which the store never holds) and gone with their own retention and their pseudonym keys.

``Platform.build`` registers them on the sweeper after the built-in targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from civicguard.catalog.model import RecordRetention
from civicguard.citizens.records import CitizenRecords
from civicguard.citizens.vault import PREFIX, key_name
from civicguard.privacy.keys import KeyStore
from civicguard.privacy.retention import RetentionTarget
from civicguard.store.lifecycle import DESTROYED

#: Why ``subject_keys`` destroyed a key, as ``key_events`` records it (nothing about the person).
RETIRED = "retention: no consent, receipt, request or report of the subject left"


class SubjectKeyJournal(Protocol):
    """Where subject key destructions are recorded, and forgotten (the store's ``key_events``)."""

    def record(
        self, name: str, event: str, at: float, reason: str = "", *, replace: bool = False
    ) -> bool:
        """Record ``event`` of key ``name`` (``replace``: the latest of a name used again)."""
        ...

    def forget(self, prefix: str, before: float) -> int:
        """Delete the events before ``before`` of keys named ``prefix...``; return how many."""
        ...


@dataclass(frozen=True, slots=True)
class ConsentRetention:
    """Consent spans withdrawn longer than the proof period ago."""

    retention: RecordRetention
    records: CitizenRecords
    name: str = "consents"

    def sweep(self, now: float) -> int:
        """Delete spans withdrawn before ``now - consent_proof``."""
        return self.records.consents.delete_withdrawn(now - self.retention.consent_proof_s)


@dataclass(frozen=True, slots=True)
class ReceiptRetention:
    """Consent receipts past the proof period that back no remaining span."""

    retention: RecordRetention
    records: CitizenRecords
    name: str = "consent_receipts"

    def sweep(self, now: float) -> int:
        """Delete receipts older than ``consent_proof`` that no span names (runs after spans)."""
        return self.records.consents.delete_unbacked_receipts(now - self.retention.consent_proof_s)


@dataclass(frozen=True, slots=True)
class SubjectRequestRetention:
    """Subject requests done longer than their proof period ago."""

    retention: RecordRetention
    records: CitizenRecords
    name: str = "subject_requests"

    def sweep(self, now: float) -> int:
        """Delete requests done before ``now - subject_requests``."""
        return self.records.requests.delete_done(now - self.retention.subject_requests_s)


@dataclass(frozen=True, slots=True)
class ErasedSubjectRetention:
    """The record of an erasure, or of a subject key's destruction, once its proof period
    has passed."""

    retention: RecordRetention
    records: CitizenRecords
    #: Where ``subject_keys`` recorded its destructions; None: only erasures are forgotten.
    journal: SubjectKeyJournal | None = None
    name: str = "erased_subjects"

    def sweep(self, now: float) -> int:
        """Forget subjects erased, and subject keys destroyed, before ``now - subject_requests``."""
        before = now - self.retention.subject_requests_s
        forgotten = self.records.subjects.delete_erased(before)
        if self.journal is not None:
            forgotten += self.journal.forget(PREFIX, before)
        return forgotten


@dataclass(frozen=True, slots=True)
class ReportRetention:
    """Citizen reports, by arrival."""

    retention: RecordRetention
    records: CitizenRecords
    name: str = "citizen_reports"

    def sweep(self, now: float) -> int:
        """Delete reports received before ``now - citizen_reports``."""
        return self.records.reports.delete_older(now - self.retention.citizen_reports_s)


@dataclass(frozen=True, slots=True)
class SubjectKeyRetention:
    """Subject keys of subjects with nothing left: destroyed, recorded, the subject forgotten.

    A grant, report or request of the same subject may arrive while the sweep runs. The sweep
    lists the idle subjects without locking, then retires each inside the transaction that
    holds its subject row (:meth:`SubjectRepository.held`), where it looks again: every writer
    seals and keeps its row inside that same hold (:meth:`SubjectVault.sealing`). So either the
    writer committed first and the sweep sees its row and keeps the key, or the sweep destroys
    the key first and the writer, waiting on the row, then creates a fresh one. A consent span
    is written before the hold of its receipt; it is not sealed, and a span committed after the
    look simply lives on beside the receipt under the fresh key.
    """

    records: CitizenRecords
    keys: KeyStore
    journal: SubjectKeyJournal
    name: str = "subject_keys"

    def sweep(self, now: float) -> int:
        """Destroy the keys of subjects no record names any more; return how many."""
        subjects = self.records.subjects
        alive = {n.removeprefix(PREFIX) for n in self.keys.names() if n.startswith(PREFIX)}
        # Subjects recorded without a key are forgotten too (a retirement cut short).
        idle = (alive | subjects.remembered()) - subjects.handles_in_use()
        return sum(self._retire(handle, now) for handle in sorted(idle))

    def _retire(self, handle: str, now: float) -> bool:
        name = key_name(handle)
        with self.records.subjects.held(handle, now) as conn:
            if self.records.subjects.in_use(conn, handle):
                return False  # something of theirs arrived since the list was made
            destroyed = self.keys.destroy(name)
            self.records.subjects.forget(conn, handle)
        if destroyed:
            self.journal.record(name, DESTROYED, now, RETIRED, replace=True)
        return destroyed


def citizen_targets(
    retention: RecordRetention,
    records: CitizenRecords,
    keys: KeyStore | None = None,
    journal: SubjectKeyJournal | None = None,
) -> list[RetentionTarget]:
    """The citizens' targets in the order they must run (spans before the receipts they name,
    every record before the subject keys). ``subject_keys`` needs ``keys`` and ``journal``."""
    targets: list[RetentionTarget] = [
        ConsentRetention(retention, records),
        ReceiptRetention(retention, records),
        SubjectRequestRetention(retention, records),
        ErasedSubjectRetention(retention, records, journal),
        ReportRetention(retention, records),
    ]
    if keys is not None and journal is not None:
        targets.append(SubjectKeyRetention(records, keys, journal))
    return targets

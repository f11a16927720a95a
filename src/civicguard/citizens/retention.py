"""Retention targets of the citizens' records, with durations from the catalog's ``retention``.

- ``consents``: a consent span stays while in force and ``consent_proof`` after its withdrawal
  (proof that processing had a basis, GDPR Art. 7(1));
- ``consent_receipts``: a receipt stays while a remaining span names it, and at least
  ``consent_proof`` after it was issued (so a no-op grant's receipt also ages out);
- ``subject_requests``: done requests ``subject_requests`` after they were done; pending ones
  stay until carried out;
- ``erased_subjects``: the record that a subject was erased, ``subject_requests`` after it;
- ``citizen_reports``: reports ``citizen_reports`` after they arrived, named or anonymous.

``Platform.build`` registers them on the sweeper after the built-in targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from civicguard.catalog.model import RecordRetention
from civicguard.citizens.records import CitizenRecords
from civicguard.privacy.retention import RetentionTarget


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
        return self.records.consents.delete_unbacked_receipts(
            now - self.retention.consent_proof_s
        )


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
    """The record of an erasure, once its proof period has passed."""

    retention: RecordRetention
    records: CitizenRecords
    name: str = "erased_subjects"

    def sweep(self, now: float) -> int:
        """Forget subjects erased before ``now - subject_requests``."""
        return self.records.subjects.delete_erased(now - self.retention.subject_requests_s)


@dataclass(frozen=True, slots=True)
class ReportRetention:
    """Citizen reports, by arrival."""

    retention: RecordRetention
    records: CitizenRecords
    name: str = "citizen_reports"

    def sweep(self, now: float) -> int:
        """Delete reports received before ``now - citizen_reports``."""
        return self.records.reports.delete_older(now - self.retention.citizen_reports_s)


def citizen_targets(retention: RecordRetention, records: CitizenRecords) -> list[RetentionTarget]:
    """The citizens' targets in the order they must run (spans before the receipts they name)."""
    return [
        ConsentRetention(retention, records),
        ReceiptRetention(retention, records),
        SubjectRequestRetention(retention, records),
        ErasedSubjectRetention(retention, records),
        ReportRetention(retention, records),
    ]

"""Citizens: consent with signed receipts, subject rights by crypto-shredding, citizen reports.

:class:`Citizens` holds the services of this package, built once by ``Platform.build``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from civicguard.catalog.model import Catalog
from civicguard.citizens.consent import ConsentError, ConsentRegistry, Issued
from civicguard.citizens.gate import ConsentGate
from civicguard.citizens.handles import SubjectIdError, SubjectIndex
from civicguard.citizens.readings import SubjectReadings
from civicguard.citizens.receipts import ReceiptError, ReceiptSigner, verify_receipt
from civicguard.citizens.records import CitizenRecords
from civicguard.citizens.reports import CitizenReports, ReportError, default_scrub
from civicguard.citizens.subjects import ErasureReport, RequestKind, SubjectRights
from civicguard.citizens.vault import SubjectVault
from civicguard.clock import Clock
from civicguard.privacy.keys import KeyStore

__all__ = [
    "CitizenReports",
    "Citizens",
    "ConsentError",
    "ConsentGate",
    "ConsentRegistry",
    "ErasureReport",
    "Issued",
    "ReceiptError",
    "ReceiptSigner",
    "ReportError",
    "RequestKind",
    "SubjectIdError",
    "SubjectIndex",
    "SubjectRights",
    "SubjectVault",
    "verify_receipt",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Citizens:
    """The citizens' services of one platform: consent, its ingest gate, rights, reports."""

    index: SubjectIndex
    vault: SubjectVault
    signer: ReceiptSigner
    consent: ConsentRegistry
    gate: ConsentGate
    rights: SubjectRights
    reports: CitizenReports

    @classmethod
    def build(
        cls,
        catalog: Catalog,
        keys: KeyStore,
        engine: Engine,
        clock: Clock,
        *,
        scrub: Callable[[str], str] = default_scrub,
    ) -> Citizens:
        """Wire the services over one engine and key store (called by ``Platform.build``)."""
        records = CitizenRecords(engine)
        index = SubjectIndex(keys)
        vault = SubjectVault(keys, records.subjects, clock)
        signer = ReceiptSigner(keys)
        return cls(
            index=index,
            vault=vault,
            signer=signer,
            consent=ConsentRegistry(catalog, records.consents, index, vault, signer, clock),
            gate=ConsentGate(catalog, records.consents, index),
            rights=SubjectRights(
                catalog, records, index, vault, clock, SubjectReadings(catalog, keys, engine)
            ),
            reports=CitizenReports(records.reports, index, vault, clock, scrub),
        )

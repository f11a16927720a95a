"""Citizens: consent with signed receipts, subject rights by crypto-shredding, citizen reports.

:class:`Citizens` holds the services of this package, built once by ``Platform.build``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from civicguard.catalog.model import Catalog
from civicguard.citizens.consent import ConsentError, ConsentRegistry, Issued
from civicguard.citizens.gate import ConsentGate
from civicguard.citizens.handles import SubjectIdError, SubjectIndex
from civicguard.citizens.ledger import Erasure, ErasureLedger, ledger_for
from civicguard.citizens.readings import SubjectReadings
from civicguard.citizens.receipts import ReceiptError, ReceiptSigner, verify_receipt
from civicguard.citizens.records import CitizenRecords
from civicguard.citizens.reports import CitizenReports, ReportError, default_scrub
from civicguard.citizens.subjects import ErasureReport, Reapplied, RequestKind, SubjectRights
from civicguard.citizens.vault import SubjectVault
from civicguard.clock import Clock
from civicguard.privacy.keys import KeyStore

__all__ = [
    "CitizenReports",
    "Citizens",
    "ConsentError",
    "ConsentGate",
    "ConsentRegistry",
    "Erasure",
    "ErasureLedger",
    "ErasureReport",
    "Issued",
    "Reapplied",
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
    #: Every erasure, kept beside the keys so that no restore of the database undoes one.
    ledger: ErasureLedger
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
        keys_dir: Path | None = None,
    ) -> Citizens:
        """Wire the services over one engine and key store (called by ``Platform.build``).

        ``keys_dir``: where a file key store keeps its keys; the erasure ledger goes beside
        them (with keys in memory, or without it, the ledger is in memory too).
        """
        records = CitizenRecords(engine)
        index = SubjectIndex(keys)
        vault = SubjectVault(keys, records.subjects, clock)
        signer = ReceiptSigner(keys)
        ledger = ledger_for(keys, keys_dir)
        return cls(
            index=index,
            vault=vault,
            ledger=ledger,
            signer=signer,
            consent=ConsentRegistry(catalog, records.consents, index, vault, signer, clock, ledger),
            gate=ConsentGate(catalog, records.consents, index, vault, ledger),
            rights=SubjectRights(
                catalog,
                records,
                index,
                vault,
                clock,
                ledger,
                SubjectReadings(catalog, keys, engine),
            ),
            reports=CitizenReports(records.reports, index, vault, clock, scrub),
        )

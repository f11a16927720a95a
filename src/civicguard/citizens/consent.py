"""The consent registry: who consented to which purposes of which stream, and since when.

Subjects are kept as handles (see :mod:`civicguard.citizens.handles`). Every grant and every
withdrawal issues a signed receipt (:mod:`civicguard.citizens.receipts`): the citizen's copy is
returned, the record copy is sealed under the subject's key and kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from civicguard.catalog.model import Catalog, LegalBasis, Stream
from civicguard.citizens.gate import live_spans
from civicguard.citizens.handles import SubjectIndex
from civicguard.citizens.ledger import ErasureLedger
from civicguard.citizens.receipts import ReceiptSigner, build_receipt
from civicguard.citizens.records import ConsentRepository
from civicguard.citizens.vault import Sealing, SubjectVault
from civicguard.clock import Clock

#: How receipts describe the way consent was collected, unless the caller says otherwise.
DEFAULT_METHOD = "in the city's citizen app, relayed by its provisioned backend"


class ConsentError(ValueError):
    """A grant or withdrawal that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Issued:
    """What a grant or withdrawal did: the purposes it changed and the citizen's receipt."""

    purposes: tuple[str, ...]
    receipt: dict[str, Any]


def receipt_context(receipt_id: str) -> str:
    """The AES-GCM associated data that binds a sealed receipt to its row."""
    return f"consent-receipt:{receipt_id}"


class ConsentRegistry:
    """Grants, withdrawals and the validity of consent per subject, stream and purpose."""

    def __init__(
        self,
        catalog: Catalog,
        consents: ConsentRepository,
        index: SubjectIndex,
        vault: SubjectVault,
        signer: ReceiptSigner,
        clock: Clock,
        ledger: ErasureLedger,
    ) -> None:
        self.catalog = catalog
        self.ledger = ledger
        self.consents = consents
        self.index = index
        self.vault = vault
        self.signer = signer
        self.clock = clock

    def consent_stream(self, name: str) -> Stream:
        """The stream called ``name`` if its legal basis is consent; ``ConsentError`` if not."""
        if not self.catalog.has_stream(name):
            raise ConsentError(f"stream {name!r} is not in the catalog")
        stream = self.catalog.stream(name)
        if stream.legal_basis is not LegalBasis.CONSENT:
            raise ConsentError(
                f"stream {name!r} rests on {stream.legal_basis.value}, not on consent"
            )
        return stream

    def _purposes(self, stream: Stream, purposes: Sequence[str] | None) -> list[str]:
        if purposes is None:
            return list(stream.purposes)
        if not purposes:
            raise ConsentError("name at least one purpose, or none to mean all of the stream's")
        unknown = [p for p in purposes if p not in stream.purposes]
        if unknown:
            raise ConsentError(
                f"purpose(s) {', '.join(map(repr, unknown))} are not purposes of {stream.name} "
                f"(it has {', '.join(stream.purposes)})"
            )
        return list(dict.fromkeys(purposes))

    def grant(
        self,
        citizen_id: str,
        stream: str,
        purposes: Sequence[str] | None = None,
        *,
        at: float | None = None,
        method: str = DEFAULT_METHOD,
    ) -> Issued:
        """Record consent to ``purposes`` (None: all of the stream's) and issue a receipt."""
        spec = self.consent_stream(stream)
        wanted = self._purposes(spec, purposes)
        handle = self.index.handle(citizen_id)
        at = self.clock.now() if at is None else at
        receipt_id = str(uuid.uuid4())
        # The span and its receipt are written holding the subject, so an erasure of the same
        # citizen running meanwhile is wholly before or wholly after them (never between).
        with self.vault.sealing(handle) as box:
            self._drop_erased(handle, box)
            self.consents.grant(handle, spec.name, wanted, at, receipt_id, box.conn)
            receipt = self._issue(
                "grant", spec, wanted, citizen_id, handle, at, receipt_id, method, box
            )
        return Issued(tuple(wanted), receipt)

    def withdraw(
        self,
        citizen_id: str,
        stream: str,
        purposes: Sequence[str] | None = None,
        *,
        at: float | None = None,
        method: str = DEFAULT_METHOD,
    ) -> Issued:
        """End consent to ``purposes`` (None: all); it applies from the next reading."""
        spec = self.consent_stream(stream)
        wanted = None if purposes is None else self._purposes(spec, purposes)
        handle = self.index.handle(citizen_id)
        at = self.clock.now() if at is None else at
        receipt_id = str(uuid.uuid4())
        with self.vault.sealing(handle) as box:
            self._drop_erased(handle, box)
            closed = self.consents.withdraw(handle, spec.name, wanted, at, receipt_id, box.conn)
            if not closed:
                raise ConsentError(f"there is no consent in force to withdraw for {spec.name}")
            receipt = self._issue(
                "withdraw", spec, closed, citizen_id, handle, at, receipt_id, method, box
            )
        return Issued(tuple(closed), receipt)

    def _drop_erased(self, handle: str, box: Sealing) -> None:
        """Delete spans and receipts of the subject's erased generation, if a restore made
        without re-applying the erasure left any: they neither count nor hide a new grant."""
        erasure = self.ledger.entries().get(handle)
        if erasure is not None:
            self.consents.delete_erased(erasure, box.conn)

    def valid(self, citizen_id: str, stream: str, at: float | None = None) -> bool:
        """True if the subject consents, at ``at``, to every purpose of ``stream``."""
        spec = self.consent_stream(stream)
        at = self.clock.now() if at is None else at
        handle = self.index.handle(citizen_id)
        spans = live_spans(
            self.consents.spans([handle], spec.name)[handle],
            handle,
            self.vault,
            self.ledger.entries().get(handle),
        )
        covered = {s.purpose for s in spans if s.covers(at, at)}
        return set(spec.purposes) <= covered

    def _issue(
        self,
        action: str,
        stream: Stream,
        purposes: list[str],
        citizen_id: str,
        handle: str,
        at: float,
        receipt_id: str,
        method: str,
        box: Sealing,
    ) -> dict[str, Any]:
        """Sign the receipt, keep it sealed in ``box``'s transaction; the citizen's copy."""

        def signed(principal: str) -> dict[str, Any]:
            return self.signer.sign(
                build_receipt(
                    catalog=self.catalog,
                    stream=stream,
                    action=action,
                    purposes=purposes,
                    principal_id=principal,
                    at=at,
                    receipt_id=receipt_id,
                    collection_method=method,
                    public_key=self.signer.public_pem,
                )
            )

        record = orjson.dumps(signed(handle))
        sealed = box.seal(record, receipt_context(receipt_id))
        self.consents.add_receipt(
            receipt_id, handle, stream.name, action, at, sealed, conn=box.conn
        )
        return signed(citizen_id.strip())

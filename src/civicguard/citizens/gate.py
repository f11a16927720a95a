"""The consent gate of ingest: readings of consent-based streams pass only with valid consent.

A reading passes if its subject consents to every purpose of the stream at the reading's time
and has not withdrawn by the time it arrives (so a withdrawal applies from the next reading,
late ones included). The spans of a batch's subjects are read in one query per batch, so that
every ingest process sees a withdrawal at once, with no cache to go stale. A span counts only
while its subject's key exists and no erasure in the ledger covers it
(:func:`live_spans`): a database restored from a backup taken before an erasure cannot make
the erased citizen's consent valid again, whatever its rows say. A refused reading
becomes a dead letter without content: reason, device, stream and sequence number only.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally

import numpy as np
from prometheus_client import Counter

from civicguard.catalog.model import Catalog, LegalBasis
from civicguard.citizens.handles import SubjectIdError, SubjectIndex
from civicguard.citizens.ledger import Erasure, ErasureLedger
from civicguard.citizens.records import ConsentRepository, ConsentSpan
from civicguard.citizens.vault import SubjectVault
from civicguard.ingest.model import ReadingBatch, Reason, Rejection
from civicguard.metrics import METRICS

REFUSED = Counter(
    "civicguard_consent_refused",
    "Readings refused for want of valid consent",
    ["stream"],
    registry=METRICS.registry,
)
ADMITTED = Counter(
    "civicguard_consent_admitted",
    "Readings of consent-based streams admitted with valid consent",
    ["stream"],
    registry=METRICS.registry,
)


def live_spans(
    spans: list[ConsentSpan], handle: str, vault: SubjectVault, erasure: Erasure | None
) -> list[ConsentSpan]:
    """The spans of ``handle`` that can count: none once the subject's key is destroyed (the
    receipts behind them can no longer be read), and none an erasure covers."""
    if not spans or not vault.has_key(handle):
        return []
    if erasure is None:
        return spans
    return [s for s in spans if not erasure.covers_span(s.granted_at, s.grant_receipt)]


class ConsentGate:
    """Screens batches of consent-based streams; ``streams`` names the ones it applies to."""

    def __init__(
        self,
        catalog: Catalog,
        consents: ConsentRepository,
        index: SubjectIndex,
        vault: SubjectVault,
        ledger: ErasureLedger,
    ) -> None:
        self.catalog = catalog
        self._consents = consents
        self._index = index
        self._vault = vault
        self._ledger = ledger
        self.streams = frozenset(
            s.name for s in catalog.streams if s.legal_basis is LegalBasis.CONSENT
        )
        self._counts: dict[str, Tally[str]] = {}
        self._lock = threading.Lock()

    def screen(self, batch: ReadingBatch) -> tuple[ReadingBatch | None, list[Rejection]]:
        """The readings with valid consent (None if none) and a refusal for each other one."""
        stream = self.catalog.stream(batch.stream)
        subjects = batch.text.get(stream.subject_field or "", [None] * len(batch))
        handles: list[str | None] = []
        for value in subjects:
            try:
                handles.append(self._index.handle(value))
            except SubjectIdError:
                handles.append(None)
        found = self._consents.spans((h for h in handles if h is not None), stream.name)
        erased = self._ledger.entries()
        spans = {h: live_spans(s, h, self._vault, erased.get(h)) for h, s in found.items()}
        needed = set(stream.purposes)
        stamps = batch.ts.tolist()
        arrivals = batch.received_at.tolist()
        keep: list[int] = []
        refused: list[Rejection] = []
        for i, handle in enumerate(handles):
            ts, arrived = stamps[i], arrivals[i]
            if handle is not None and needed <= {
                s.purpose for s in spans[handle] if s.covers(ts, arrived)
            }:
                keep.append(i)
                continue
            why = "no subject" if handle is None else "no valid consent of its subject"
            refused.append(
                Rejection(
                    reason=Reason.NO_CONSENT,
                    detail=f"{stream.name} rests on consent: {why} for "
                    f"{', '.join(stream.purposes)} at ts {ts:.0f}; content not kept",
                    transport=batch.transport,
                    received_at=arrived,
                    device_id=batch.device_ids[i],
                    stream=stream.name,
                    seq=int(batch.seq[i]),
                )
            )
        self._count(stream.name, len(keep), len(refused))
        if not keep:
            return None, refused
        if len(keep) == len(batch):
            return batch, refused
        return batch.take(np.array(keep, dtype=np.intp)), refused

    def _count(self, stream: str, admitted: int, refused: int) -> None:
        with self._lock:
            tally = self._counts.setdefault(stream, Tally())
            tally["admitted"] += admitted
            tally["refused"] += refused
        if admitted:
            ADMITTED.labels(stream=stream).inc(admitted)
        if refused:
            REFUSED.labels(stream=stream).inc(refused)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per stream, readings admitted and refused by this process since it started."""
        with self._lock:
            return {name: dict(tally) for name, tally in self._counts.items()}

"""The ingest service: every transport hands it an authenticated device and a body.

It validates, checks sequence numbers, sends the readings through the privacy gateway and
publishes protected batches and redacted refusals to the event log. Transports (HTTP, MQTT,
replay, the simulator) know nothing beyond this one call.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import orjson

from civicguard.bus.port import Event, EventLog
from civicguard.clock import Clock
from civicguard.ingest.decode import Decoder, ReadingError
from civicguard.ingest.model import (
    Device,
    IngestResult,
    IntArray,
    ReadingBatch,
    Reason,
    Rejection,
    Transport,
)
from civicguard.ingest.sequence import SequenceGuard, Verdict
from civicguard.metrics import METRICS
from civicguard.privacy.gateway import PrivacyGateway


class ConsentScreen(Protocol):
    """Admits readings of consent-based streams only with valid consent (citizens.gate)."""

    #: The streams whose legal basis is consent; batches of other streams skip the screen.
    streams: frozenset[str]

    def screen(self, batch: ReadingBatch) -> tuple[ReadingBatch | None, list[Rejection]]:
        """The readings admitted (None if none) and a content-free refusal for each other."""
        ...


class IngestService:
    """Validate, deduplicate, protect and publish what authenticated devices send."""

    def __init__(
        self,
        decoder: Decoder,
        gateway: PrivacyGateway,
        guard: SequenceGuard,
        log: EventLog,
        clock: Clock,
        *,
        consent: ConsentScreen | None = None,
    ) -> None:
        self.decoder = decoder
        self.consent = consent
        self.gateway = gateway
        self.guard = guard
        self.log = log
        self.clock = clock
        # HTTP, MQTT and the simulator submit from different threads; the sequence guard's
        # per-device windows must see one message at a time.
        self._lock = threading.Lock()

    def submit(self, device: Device, body: bytes, transport: Transport) -> IngestResult:
        """Ingest a raw body (one reading or a JSON array of readings) from ``device``."""
        now = self.clock.now()
        try:
            items = self.decoder.parse_body(body)
        except ReadingError as exc:
            rejection = Rejection(
                reason=exc.reason,
                detail=exc.detail,
                transport=transport,
                received_at=now,
                device_id=device.id,
                stream=device.stream,
                payload=body[:4096],
            )
            result = IngestResult(rejections=[rejection])
            self._publish(result, authenticated=True)
            return result
        return self.submit_items(device, items, transport, now=now)

    def submit_items(
        self, device: Device, items: list[Any], transport: Transport, *, now: float | None = None
    ) -> IngestResult:
        """Ingest already-parsed readings from ``device``."""
        now = self.clock.now() if now is None else now
        result = self.decoder.decode(device, items, transport=transport, received_at=now)
        protected: list[ReadingBatch] = []
        # Fingerprints need no lock; the guard's windows do.
        prints = [self.guard.fingerprinter.of(batch) for batch in result.batches]
        with self._lock:
            fresh = [
                self._sequence(batch, p, result)
                for batch, p in zip(result.batches, prints, strict=True)
            ]
        admitted = fresh if self.consent is None else [self._screen(b, result) for b in fresh]
        for batch in admitted:
            if batch is not None:
                protected.append(self.gateway.protect(batch, self.gateway.cell_of(device)))
        result.batches = protected
        result.accepted = sum(len(b) for b in protected)
        try:
            self._publish(result, authenticated=True)
        except Exception:
            # Not published means not accepted: let the device's retry through the guard.
            with self._lock:
                for batch in fresh:
                    if batch is not None:
                        self.guard.forget(device.id, batch.seq.tolist())
            raise
        return result

    def refuse(
        self,
        reason: Reason,
        detail: str,
        transport: Transport,
        body: bytes = b"",
        device_id: str | None = None,
    ) -> Rejection:
        """Record a message refused before any device was authenticated (kept without content)."""
        rejection = Rejection(
            reason=reason,
            detail=detail,
            transport=transport,
            received_at=self.clock.now(),
            device_id=device_id,
            payload=body[:4096],
        )
        self._publish(IngestResult(rejections=[rejection]), authenticated=False)
        return rejection

    def _screen(self, batch: ReadingBatch | None, result: IngestResult) -> ReadingBatch | None:
        """Readings of consent-based streams without valid consent become refusals."""
        consent = self.consent
        if batch is None or consent is None or batch.stream not in consent.streams:
            return batch
        kept, refused = consent.screen(batch)
        result.rejections.extend(refused)
        return kept

    def _sequence(
        self, batch: ReadingBatch, prints: IntArray, result: IngestResult
    ) -> ReadingBatch | None:
        """Drop duplicates and turn replays into rejections; the batch of new readings remains.

        The new readings leave with their fingerprints, stored with them so that a guard that
        starts later recalls what it must remember from the store (ADR 0003).
        """
        verdicts = self._verdicts(batch, prints)
        if verdicts.count(Verdict.NEW) == len(verdicts):
            return replace(batch, fingerprints=prints)  # the common case: all new
        keep: list[int] = []
        for i, verdict in enumerate(verdicts):
            if verdict is Verdict.NEW:
                keep.append(i)
            elif verdict is Verdict.DUPLICATE:
                result.duplicates += 1
            else:
                result.rejections.append(_replayed(batch, i, self.guard.window))
        if not keep:
            return None
        kept = replace(batch, fingerprints=prints)
        return kept if len(keep) == len(batch) else kept.take(np.array(keep, dtype=np.intp))

    def _verdicts(self, batch: ReadingBatch, prints: IntArray) -> list[Verdict]:
        """The guard's verdict on each reading, device by device (a body is one device's)."""
        devices = batch.device_ids
        if devices and devices.count(devices[0]) == len(devices):
            return self.guard.judge(devices[0], batch.seq, prints)
        rows: dict[str, list[int]] = {}
        for i, device_id in enumerate(devices):
            rows.setdefault(device_id, []).append(i)
        verdicts = [Verdict.NEW] * len(devices)
        for device_id, index in rows.items():
            idx = np.array(index, dtype=np.intp)
            for i, verdict in zip(
                index, self.guard.judge(device_id, batch.seq[idx], prints[idx]), strict=True
            ):
                verdicts[i] = verdict
        return verdicts

    def _publish(self, result: IngestResult, *, authenticated: bool) -> None:
        events: list[Event] = list(result.batches)
        events.extend(
            self.gateway.redact(r, authenticated=authenticated) for r in result.rejections
        )
        self.log.publish(events)
        for rejection in result.rejections:
            METRICS.rejected.labels(reason=rejection.reason.value).inc()
        if result.accepted:
            METRICS.accepted.inc(result.accepted)
        if result.duplicates:
            METRICS.duplicates.inc(result.duplicates)


def _replayed(batch: ReadingBatch, i: int, window: int) -> Rejection:
    """The refusal of reading ``i`` as a replay: names the field and the rule, no value."""
    return Rejection(
        reason=Reason.REPLAYED_SEQUENCE,
        detail=(
            "seq: already used by this device with other content, or more than the replay "
            f"window ({window}) below the highest it has sent and not in its last body"
        ),
        transport=batch.transport,
        received_at=float(batch.received_at[i]),
        device_id=batch.device_ids[i],
        stream=batch.stream,
        seq=int(batch.seq[i]),
        payload=_payload(batch, i),
    )


def _payload(batch: ReadingBatch, i: int) -> bytes:
    return orjson.dumps(
        {"seq": int(batch.seq[i]), "ts": float(batch.ts[i]), "values": batch.row(i)}
    )

"""Ingest's domain types: devices, columnar reading batches, rejections and ingest results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Transport(StrEnum):
    """How a message reached the platform."""

    HTTP = "http"
    MQTT = "mqtt"
    REPLAY = "replay"
    SIMULATOR = "simulator"
    #: Known only as a message of the event log that could not be read (its origin with it).
    EVENT_LOG = "event_log"


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A provisioned device: what it reports, where it stands, whether it may still speak."""

    id: str
    stream: str
    lat: float
    lon: float
    district: str = ""
    label: str = ""
    revoked: bool = False


class Reason(StrEnum):
    """Machine-readable reasons a message or reading is refused."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    OVERSIZED = "oversized_payload"
    BATCH_TOO_LARGE = "batch_too_large"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_ALLOWED_VALUE = "not_allowed_value"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    UNKNOWN_STREAM = "unknown_stream"
    STREAM_MISMATCH = "stream_mismatch"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    DEVICE_MISMATCH = "device_mismatch"
    BAD_CREDENTIALS = "bad_credentials"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED_SEQUENCE = "replayed_sequence"
    #: A reading of a consent-based stream whose subject has no valid consent (kept without
    #: content).
    NO_CONSENT = "no_consent"
    #: Ingest failed on a message for a reason of its own (not an unavailable event log); kept
    #: so that it is not silently lost (MQTT, which must acknowledge or redeliver each message).
    INGEST_FAILED = "ingest_failed"
    #: An event of the event log that no worker could read or handle (not because the
    #: database or the log was away): dead-lettered with its content so it does not block
    #: its partition.
    UNPROCESSABLE_EVENT = "unprocessable_event"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A refused message or reading, kept with its reason (a dead letter)."""

    reason: Reason
    detail: str
    transport: Transport
    received_at: float
    device_id: str | None = None
    stream: str | None = None
    seq: int | None = None
    #: Position of the reading inside a batch body, if it came in one.
    index: int | None = None
    #: The refused payload after the privacy gateway's scrubbing, never the raw identifiers.
    payload: bytes = b""
    #: Identity given when the refusal is made, before it is published: a refusal the event
    #: log delivers again (after a crash or a failed step) is stored once as a dead letter.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def as_dict(self) -> dict[str, Any]:
        """The rejection as the API reports it."""
        return {
            "reason": self.reason.value,
            "detail": self.detail,
            "index": self.index,
            "device": self.device_id,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingBatch:
    """Readings of one stream in columnar form; the unit every stage after decoding works on.

    ``values`` is an ``(n, k)`` float matrix over the stream's numeric fields (NaN where a
    field is absent); ``text`` holds the other fields, one list of ``n`` values each.
    """

    stream: str
    fields: tuple[str, ...]
    device_ids: tuple[str, ...]
    seq: IntArray
    ts: FloatArray
    received_at: FloatArray
    values: FloatArray
    text: dict[str, list[Any]]
    cells: tuple[str, ...]
    transport: Transport
    #: ``(n, 2)`` latitude and longitude each device reported for itself in the envelope
    #: (NaN rows where a reading carried none); ``None`` when no reading did (the usual case).
    positions: FloatArray | None = None
    #: Each reading's content fingerprint (keyed digest of the raw reading, signed 64-bit),
    #: set by the sequence guard and stored with the reading; ``None`` before the guard.
    fingerprints: IntArray | None = None

    def __len__(self) -> int:
        return len(self.device_ids)

    def column(self, name: str) -> FloatArray:
        """The numeric column called ``name``."""
        return self.values[:, self.fields.index(name)]

    def take(self, index: npt.NDArray[np.intp] | list[int]) -> ReadingBatch:
        """A batch holding only the rows at ``index``, in that order."""
        idx = np.asarray(index, dtype=np.intp)
        return ReadingBatch(
            stream=self.stream,
            fields=self.fields,
            device_ids=tuple(self.device_ids[i] for i in idx),
            seq=self.seq[idx],
            ts=self.ts[idx],
            received_at=self.received_at[idx],
            values=self.values[idx],
            text={k: [v[i] for i in idx] for k, v in self.text.items()},
            cells=tuple(self.cells[i] for i in idx),
            transport=self.transport,
            positions=None if self.positions is None else self.positions[idx],
            fingerprints=None if self.fingerprints is None else self.fingerprints[idx],
        )

    def row(self, i: int) -> dict[str, Any]:
        """Reading ``i`` as a plain mapping of field to value (numbers as floats)."""
        out: dict[str, Any] = {}
        for j, name in enumerate(self.fields):
            v = float(self.values[i, j])
            if not np.isnan(v):
                out[name] = v
        for name, col in self.text.items():
            out[name] = col[i]
        return out


@dataclass(slots=True)
class IngestResult:
    """What became of one submitted body: counts, refusals and the batches that went on."""

    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    batches: list[ReadingBatch] = field(default_factory=list)

    def merge(self, other: IngestResult) -> None:
        """Add ``other``'s outcome to this one."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejections.extend(other.rejections)
        self.batches.extend(other.batches)

"""Encode events for a log on disk or on the wire (local file, NATS JetStream): columnar JSON."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from civicguard.bus.port import Event
from civicguard.ingest.model import ReadingBatch, Reason, Rejection, Transport


def encode(event: Event) -> bytes:
    """One event as bytes."""
    if isinstance(event, ReadingBatch):
        doc: dict[str, Any] = {
            "t": "batch",
            "stream": event.stream,
            "fields": event.fields,
            "device_ids": event.device_ids,
            "seq": event.seq,
            "ts": event.ts,
            "received_at": event.received_at,
            # NaN marks an absent field; JSON has no NaN, so send a mask beside the values.
            "values": np.nan_to_num(event.values, nan=0.0),
            "present": ~np.isnan(event.values),
            "text": event.text,
            "cells": event.cells,
            "transport": event.transport.value,
        }
        if event.positions is not None:
            # NaN rows (readings without a position) travel as nulls.
            doc["positions"] = event.positions.tolist()
        if event.fingerprints is not None:
            doc["fingerprints"] = event.fingerprints
    else:
        doc = {
            "t": "rejection",
            "reason": event.reason.value,
            "detail": event.detail,
            "transport": event.transport.value,
            "received_at": event.received_at,
            "device_id": event.device_id,
            "stream": event.stream,
            "seq": event.seq,
            "index": event.index,
            "payload": event.payload.decode("utf-8", errors="replace"),
            "id": event.id,
        }
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def decode(data: bytes) -> Event:
    """The event that :func:`encode` turned into ``data``."""
    doc = orjson.loads(data)
    if doc["t"] == "batch":
        fields = tuple(doc["fields"])
        n = len(doc["device_ids"])
        values = np.array(doc["values"], dtype=np.float64).reshape(n, len(fields))
        present = np.array(doc["present"], dtype=bool).reshape(n, len(fields))
        values[~present] = np.nan
        return ReadingBatch(
            stream=doc["stream"],
            fields=fields,
            device_ids=tuple(doc["device_ids"]),
            seq=np.array(doc["seq"], dtype=np.int64),
            ts=np.array(doc["ts"], dtype=np.float64),
            received_at=np.array(doc["received_at"], dtype=np.float64),
            values=values,
            text=doc["text"],
            cells=tuple(doc["cells"]),
            transport=Transport(doc["transport"]),
            positions=(
                np.array(doc["positions"], dtype=np.float64).reshape(n, 2)
                if "positions" in doc
                else None
            ),
            fingerprints=(
                np.array(doc["fingerprints"], dtype=np.int64) if "fingerprints" in doc else None
            ),
        )
    return Rejection(
        reason=Reason(doc["reason"]),
        detail=doc["detail"],
        transport=Transport(doc["transport"]),
        received_at=doc["received_at"],
        device_id=doc["device_id"],
        stream=doc["stream"],
        seq=doc["seq"],
        index=doc["index"],
        payload=doc["payload"].encode(),
        # Events published before refusals had an identity get one now.
        **({"id": doc["id"]} if "id" in doc else {}),
    )

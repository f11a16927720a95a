"""The privacy gateway: applies the catalog's treatments before anything else sees a reading.

Fields are kept, dropped or pseudonymised with a keyed HMAC whose key rotates every
``pseudonym_rotation`` (so the same plate links within a period, never across periods), and
every reading is placed on an H3 cell at its stream's resolution instead of exact coordinates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import h3
import numpy as np
import orjson

from civicguard.catalog.model import Catalog, Treatment
from civicguard.ingest.model import Device, ReadingBatch, Rejection
from civicguard.privacy.keys import KeyStore

_MAC = re.compile(r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b")
_PLATE_NOISE = re.compile(r"[\s\-.·]")


def normalise_identifier(kind: str | None, value: str) -> str:
    """The canonical spelling of an identifier, so that one plate or MAC gets one pseudonym.

    >>> normalise_identifier("licence_plate", "ab-123 cd")
    'AB123CD'
    >>> normalise_identifier("mac_address", "AA-BB-CC-00-11-22")
    'aa:bb:cc:00:11:22'
    """
    if kind == "licence_plate":
        return _PLATE_NOISE.sub("", value).upper()
    if kind == "mac_address":
        return value.replace("-", ":").lower()
    return value.strip()


class Pseudonymiser:
    """Keyed HMAC-SHA256 pseudonyms under a key that rotates every ``rotation_s`` seconds."""

    def __init__(self, keys: KeyStore, rotation_s: float) -> None:
        self._keys = keys
        self.rotation_s = rotation_s
        self._cache: dict[int, bytes] = {}

    def period(self, ts: float) -> int:
        """The key period that ``ts`` falls in."""
        return int(ts // self.rotation_s)

    def _key(self, period: int) -> bytes:
        key = self._cache.get(period)
        if key is None:
            key = self._keys.get_or_create(f"pseudonym/{period}")
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[period] = key
        return key

    def pseudonym(self, kind: str | None, value: str, ts: float) -> str:
        """The pseudonym of ``value`` (an identifier of ``kind``) in the period of ``ts``."""
        key = self._key(self.period(ts))
        message = f"{kind or 'id'}:{normalise_identifier(kind, value)}".encode()
        return "ps_" + hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


class PrivacyGateway:
    """Applies each stream's per-field treatments to decoded batches."""

    def __init__(self, catalog: Catalog, keys: KeyStore) -> None:
        self.catalog = catalog
        self.pseudonymiser = Pseudonymiser(keys, catalog.pseudonym_rotation_s)
        self._cells: dict[tuple[str, int], str] = {}
        self._plans: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
        for stream in catalog.streams:
            numeric = stream.numeric_fields
            keep = np.array(
                [i for i, f in enumerate(numeric) if f.treatment is not Treatment.DROP],
                dtype=np.intp,
            )
            self._plans[stream.name] = (keep, tuple(numeric[i].name for i in keep))

    def cell_of(self, device: Device) -> str:
        """The H3 cell of a device's registered place at its stream's resolution."""
        resolution = self.catalog.stream(device.stream).h3_resolution
        key = (device.id, resolution)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = h3.latlng_to_cell(device.lat, device.lon, resolution)
        return cell

    def protect(self, batch: ReadingBatch, cell: str) -> ReadingBatch:
        """The batch as the rest of the platform may see it: treated fields, placed on ``cell``."""
        stream = self.catalog.stream(batch.stream)
        keep, kept_names = self._plans[stream.name]
        values = batch.values if len(kept_names) == len(batch.fields) else batch.values[:, keep]
        text: dict[str, list[Any]] = {}
        for spec in stream.text_fields:
            column = batch.text.get(spec.name)
            if column is None or spec.treatment is Treatment.DROP:
                continue
            if spec.treatment is Treatment.PSEUDONYMISE:
                text[spec.name] = self._pseudonymise_column(spec.identifier, column, batch.ts)
            else:
                text[spec.name] = column
        return ReadingBatch(
            stream=batch.stream,
            fields=kept_names,
            device_ids=batch.device_ids,
            seq=batch.seq,
            ts=batch.ts,
            received_at=batch.received_at,
            values=values,
            text=text,
            cells=(cell,) * len(batch),
            transport=batch.transport,
        )

    def _pseudonymise_column(
        self, kind: str | None, column: list[Any], ts: np.ndarray
    ) -> list[Any]:
        out: list[Any] = []
        pseudonym = self.pseudonymiser.pseudonym
        for value, when in zip(column, ts.tolist(), strict=True):
            if value is None:
                out.append(None)
            elif isinstance(value, list):
                out.append([pseudonym(kind, v, when) for v in value])
            else:
                out.append(pseudonym(kind, value, when))
        return out

    def redact(self, rejection: Rejection, *, authenticated: bool) -> Rejection:
        """A dead letter safe to keep: identifiers pseudonymised, unsafe payloads withheld.

        Payloads from senders that did not authenticate are never kept (only their size), nor
        are unparseable payloads of streams that carry personal identifiers.
        """
        payload = rejection.payload
        if not payload:
            return rejection
        stream = (
            self.catalog.stream(rejection.stream)
            if rejection.stream and self.catalog.has_stream(rejection.stream)
            else None
        )
        identifiers = [f for f in stream.fields if f.identifier] if stream else []
        safe: bytes
        if not authenticated:
            safe = orjson.dumps({"withheld": "sender not authenticated", "bytes": len(payload)})
        elif identifiers:
            safe = self._redact_identifiers(payload, identifiers, rejection.received_at)
        else:
            safe = payload[:4096]
        safe = _MAC.sub("[mac]", safe.decode("utf-8", errors="replace")).encode()
        return Rejection(
            reason=rejection.reason,
            detail=rejection.detail,
            transport=rejection.transport,
            received_at=rejection.received_at,
            device_id=rejection.device_id,
            stream=rejection.stream,
            seq=rejection.seq,
            index=rejection.index,
            payload=safe,
        )

    def _redact_identifiers(self, payload: bytes, identifiers: list[Any], when: float) -> bytes:
        withheld = orjson.dumps(
            {"withheld": "unparseable payload of a personal stream", "bytes": len(payload)}
        )
        try:
            item = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return withheld
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, dict):
            return withheld
        for spec in identifiers:
            raw = values.get(spec.name)
            if isinstance(raw, str):
                values[spec.name] = self.pseudonymiser.pseudonym(spec.identifier, raw, when)
            elif isinstance(raw, list):
                values[spec.name] = [
                    self.pseudonymiser.pseudonym(spec.identifier, str(v), when) for v in raw
                ]
            elif raw is not None:
                values[spec.name] = "[withheld]"
        return orjson.dumps(item)[:4096]

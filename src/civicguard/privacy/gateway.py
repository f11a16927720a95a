"""The privacy gateway: applies the catalog's treatments before anything else sees a reading.

Per field: keep, drop, pseudonymise (keyed HMAC under a per-stream key that rotates every
``pseudonym_rotation``, see :mod:`civicguard.privacy.pseudonyms`), generalise a number to the
lower bound of its catalog ``bucket``, or count the distinct identifiers of a list. Per reading:
its place becomes an H3 cell at the stream's resolution (the device's registered place, or the
reading's own ``location`` fields, which are then dropped) and its time is rounded down to the
stream's ``time_bucket``. What the gateway did is counted per stream (:meth:`counts`).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
import numpy.typing as npt
import orjson

from civicguard.catalog.model import Catalog, Category, FieldSpec, FieldType, Stream, Treatment
from civicguard.ingest import position
from civicguard.ingest.model import Device, ReadingBatch, Reason, Rejection
from civicguard.metrics import METRICS
from civicguard.privacy.keys import KeyStore
from civicguard.privacy.pseudonyms import (
    KeyJournal,
    Pseudonymiser,
    digest,
    normalise_identifier,
)

__all__ = ["ACTIONS", "PrivacyGateway", "Pseudonymiser", "generalise", "normalise_identifier"]

_MAC = re.compile(r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b")
_LINE = re.compile(r"^line \d+: ")

#: What the gateway counts per stream: readings that went through, readings refused (by
#: ingest, counted as their dead letters pass here) and field values by what happened to them
#: (a reading's own location and a bucketed timestamp count as generalised).
ACTIONS = ("readings", "refused", "kept", "generalised", "pseudonymised", "counted", "dropped")
_READINGS, _REFUSED, _KEPT, _GENERALISED, _PSEUDONYMISED, _COUNTED, _DROPPED = range(7)
_NO_STREAM = "(none)"

FloatArray = npt.NDArray[np.float64]


def generalise(values: FloatArray, width: float) -> FloatArray:
    """Each value's range lower bound: the largest multiple of ``width`` not above it.

    Exact for widths that binary floating point holds exactly (integers, halves...); for others
    the result still satisfies ``lower <= value < lower + width``. NaN stays NaN.

    >>> generalise(np.array([37.0, 40.0, -1.0, np.nan]), 10.0).tolist()
    [30.0, 40.0, -10.0, nan]
    """
    with np.errstate(invalid="ignore"):
        k = np.floor(values / width)
        k = np.where(k * width > values, k - 1, k)
        # Both spellings of the next bound: (k + 1) * width and k * width + width can round
        # apart (0.6 with width 0.1: 0.6000000000000001 and 0.6)...
        up = ((k + 1) * width <= values) | (k * width + width <= values)
        k = np.where(up, k + 1, k)
        # ...and then k * width may round just above the value it stands for.
        result: FloatArray = np.minimum(k * width, values)
    return result


def bucket_times(ts: FloatArray, width: float) -> FloatArray:
    """Timestamps rounded down to the start of their ``width``-second bucket.

    >>> bucket_times(np.array([1000.0, 1299.9, 1300.0]), 300.0).tolist()
    [900.0, 1200.0, 1200.0]
    """
    return generalise(ts, width)


def distinct_count(kind: str | None, values: list[Any]) -> int:
    """How many distinct identifiers a list holds, spellings of one identifier counted once.

    >>> distinct_count("mac_address", ["AA-BB-CC-00-11-22", "aa:bb:cc:00:11:22", "02:00:5e:0:0:1"])
    2
    """
    return len({normalise_identifier(kind, str(v)) for v in values})


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one stream's batches are treated, worked out once from the catalog."""

    stream: Stream
    #: Input numeric columns that leave the gateway, and their names.
    keep: npt.NDArray[np.intp]
    names: tuple[str, ...]
    #: Output columns to generalise and their bucket widths.
    generalise: tuple[tuple[int, float], ...]
    #: Input columns of the reading's own latitude and longitude.
    location: tuple[int, int] | None
    #: Per input numeric column, the action it counts under.
    numeric_actions: npt.NDArray[np.intp]
    #: Text fields in order: (spec, action index).
    text: tuple[tuple[FieldSpec, int], ...]
    #: Fields counted (string lists -> numbers), appended as numeric columns.
    counted: tuple[FieldSpec, ...]


def _plan(stream: Stream) -> _Plan:
    numeric = stream.numeric_fields
    located = set(stream.location or ())
    keep: list[int] = []
    actions: list[int] = []
    gen: list[tuple[int, float]] = []
    for i, spec in enumerate(numeric):
        if spec.name in located:
            actions.append(_GENERALISED)
        elif spec.treatment is Treatment.DROP:
            actions.append(_DROPPED)
        elif spec.treatment is Treatment.GENERALISE and spec.bucket:
            gen.append((len(keep), float(spec.bucket)))
            keep.append(i)
            actions.append(_GENERALISED)
        else:
            keep.append(i)
            actions.append(_KEPT)
    location = None
    if stream.location is not None:
        names = [f.name for f in numeric]
        location = (names.index(stream.location[0]), names.index(stream.location[1]))
    text: list[tuple[FieldSpec, int]] = []
    counted: list[FieldSpec] = []
    for spec in stream.text_fields:
        if spec.treatment is Treatment.COUNT:
            counted.append(spec)
        action = {
            Treatment.DROP: _DROPPED,
            Treatment.PSEUDONYMISE: _PSEUDONYMISED,
            Treatment.COUNT: _COUNTED,
        }.get(spec.treatment, _KEPT)
        text.append((spec, action))
    return _Plan(
        stream=stream,
        keep=np.array(keep, dtype=np.intp),
        names=tuple(numeric[i].name for i in keep) + tuple(f.name for f in counted),
        generalise=tuple(gen),
        location=location,
        numeric_actions=np.array(actions, dtype=np.intp),
        text=tuple(text),
        counted=tuple(counted),
    )


class PrivacyGateway:
    """Applies each stream's per-field treatments to decoded batches.

    Counts (:meth:`counts`) are process-local: each process running ingest counts what went
    through it; the Prometheus counters of ``/metrics`` carry the same figures.
    """

    def __init__(self, catalog: Catalog, keys: KeyStore, journal: KeyJournal | None = None) -> None:
        self.catalog = catalog
        self.pseudonymiser = Pseudonymiser.for_catalog(keys, catalog, journal)
        self._cells: dict[tuple[str, int], str] = {}
        self._plans = {s.name: _plan(s) for s in catalog.streams}
        self._counts: dict[str, npt.NDArray[np.int64]] = {}
        self._counts_lock = threading.Lock()

    def cell_of(self, device: Device) -> str:
        """The H3 cell of a device's registered place at its stream's resolution."""
        resolution = self.catalog.stream(device.stream).h3_resolution
        key = (device.id, resolution)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = h3.latlng_to_cell(device.lat, device.lon, resolution)
        return cell

    def protect(self, batch: ReadingBatch, cell: str) -> ReadingBatch:
        """The batch as the rest of the platform may see it: treated fields, placed on cells.

        ``cell`` is the device's cell; a stream whose readings carry their own location gets
        each reading's cell instead (the device's where a reading's location is absent).
        """
        plan = self._plans[batch.stream]
        stream = plan.stream
        n = len(batch)
        tally = np.zeros(len(ACTIONS), dtype=np.int64)
        tally[_READINGS] = n
        present = np.count_nonzero(~np.isnan(batch.values), axis=0)
        np.add.at(tally, plan.numeric_actions, present)
        if len(plan.keep) == batch.values.shape[1] and not plan.generalise:
            values = batch.values
        else:
            values = batch.values[:, plan.keep]
            for j, width in plan.generalise:
                values[:, j] = generalise(values[:, j], width)
        cells: tuple[str, ...] = (cell,) * n
        if plan.location is not None:
            cells = self._located_cells(batch, plan.location, stream.h3_resolution, cell)
        ts = batch.ts
        if stream.time_bucket_s:
            ts = bucket_times(ts, stream.time_bucket_s)
            tally[_GENERALISED] += n
        now = float(batch.received_at.max()) if n else 0.0
        text: dict[str, list[Any]] = {}
        counted: list[FloatArray] = []
        for spec, action in plan.text:
            column = batch.text.get(spec.name)
            if column is None:
                continue
            tally[action] += n - column.count(None)
            if action == _DROPPED:
                continue
            if action == _PSEUDONYMISED:
                text[spec.name] = self._pseudonymise_column(
                    stream.name, spec.identifier, column, batch.ts, now
                )
            elif action == _COUNTED:
                counted.append(_count_column(spec.identifier, column))
            else:
                text[spec.name] = column
        if counted:
            values = np.column_stack([values, *counted])
        self._add(stream.name, tally)
        return ReadingBatch(
            stream=batch.stream,
            fields=plan.names,
            device_ids=batch.device_ids,
            seq=batch.seq,
            ts=ts,
            received_at=batch.received_at,
            values=values,
            text=text,
            cells=cells,
            transport=batch.transport,
            positions=self._positions(batch, stream),
        )

    @staticmethod
    def _positions(batch: ReadingBatch, stream: Stream) -> FloatArray | None:
        """Devices' own envelope positions; on personal streams no finer than their cell.

        A device of a personal stream may be carried by a person (a phone running the city's
        app), so its position leaves as the centre of its H3 cell at the stream's resolution.
        """
        if batch.positions is None or stream.category is Category.NON_PERSONAL:
            return batch.positions
        return position.generalise(batch.positions, stream.h3_resolution)

    @staticmethod
    def _located_cells(
        batch: ReadingBatch, location: tuple[int, int], resolution: int, fallback: str
    ) -> tuple[str, ...]:
        lats = batch.values[:, location[0]].tolist()
        lons = batch.values[:, location[1]].tolist()
        to_cell = h3.latlng_to_cell
        isnan = math.isnan
        return tuple(
            fallback if isnan(lat) or isnan(lon) else to_cell(lat, lon, resolution)
            for lat, lon in zip(lats, lons, strict=True)
        )

    def _pseudonymise_column(
        self, stream: str, kind: str | None, column: list[Any], ts: FloatArray, now: float
    ) -> list[Any]:
        key_at = self.pseudonymiser.keyer(stream, now)
        out: list[Any] = []
        first = float(ts[0]) if len(ts) else 0.0
        key = key_at(first)
        rotation = self.pseudonymiser.rotation_s
        period = first // rotation
        for value, when in zip(column, ts.tolist(), strict=True):
            if when // rotation != period:
                period = when // rotation
                key = key_at(when)
            if value is None:
                out.append(None)
            elif isinstance(value, list):
                out.append([digest(key, kind, v) for v in value])
            else:
                out.append(digest(key, kind, value))
        return out

    def _add(self, stream: str, tally: npt.NDArray[np.int64]) -> None:
        with self._counts_lock:
            total = self._counts.get(stream)
            if total is None:
                self._counts[stream] = tally.copy()
            else:
                total += tally
        for i in np.flatnonzero(tally).tolist():
            METRICS.gateway.labels(stream=stream, action=ACTIONS[i]).inc(int(tally[i]))

    def counts(self) -> dict[str, dict[str, int]]:
        """Per stream, readings protected and refused and field values by treatment.

        Counted since this gateway started, in this process.
        """
        with self._counts_lock:
            return {
                stream: dict(zip(ACTIONS, tally.tolist(), strict=True))
                for stream, tally in sorted(self._counts.items())
            }

    def redact(self, rejection: Rejection, *, authenticated: bool) -> Rejection:
        """A dead letter safe to keep, whatever the refused reading held and wherever.

        Payloads from senders that did not authenticate are never kept (only their size). Of an
        authenticated sender's refused reading, of any stream, only what is safe by its type is
        kept: an integer ``seq``, a numeric ``ts`` (bucketed as the stream says), and each
        declared field treated as the catalog says, with a value of the field's own type (a
        string where a number belongs, a choice outside the declared ones, a list where a string
        belongs: ``"[withheld]"``). Keys the catalog does not declare are counted, never named:
        a name is the sender's text too. Anything that is not one JSON reading is withheld. A
        claimed device id that names no device is not kept either: it could be anything.
        """
        tally = np.zeros(len(ACTIONS), dtype=np.int64)
        tally[_REFUSED] = 1
        self._add(rejection.stream or _NO_STREAM, tally)
        device_id, detail = rejection.device_id, rejection.detail
        if rejection.reason is Reason.UNKNOWN_DEVICE:
            where = _LINE.match(detail)  # a replayed file's line number stays
            device_id = None
            detail = (where.group(0) if where else "") + UNKNOWN_DEVICE_DETAIL
        payload = rejection.payload
        if payload:
            stream = (
                self.catalog.stream(rejection.stream)
                if rejection.stream and self.catalog.has_stream(rejection.stream)
                else None
            )
            if not authenticated:
                payload = orjson.dumps(
                    {"withheld": "sender not authenticated", "bytes": len(payload)}
                )
            else:
                payload = self._redact_reading(payload, stream, rejection.received_at)
            payload = _MAC.sub("[mac]", payload.decode("utf-8", errors="replace")).encode()
        return Rejection(
            reason=rejection.reason,
            detail=detail,
            transport=rejection.transport,
            received_at=rejection.received_at,
            device_id=device_id,
            stream=rejection.stream,
            seq=rejection.seq,
            index=rejection.index,
            payload=payload,
        )

    def _redact_reading(self, payload: bytes, stream: Stream | None, when: float) -> bytes:
        withheld = orjson.dumps(
            {"withheld": "not one reading of a known stream", "bytes": len(payload)}
        )
        try:
            item = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return withheld
        if not isinstance(item, dict) or stream is None:
            return withheld
        out: dict[str, Any] = {}
        seq = item.get("seq")
        if type(seq) is int and 0 <= seq < 2**63:
            out["seq"] = seq
        ts = _number(item.get("ts"))
        if ts is not None:
            if stream.time_bucket_s:
                ts = float(bucket_times(np.array([ts]), stream.time_bucket_s)[0])
            out["ts"] = ts
        other = sum(1 for k in item if k not in _ENVELOPE)
        if other:
            out["withheld_keys"] = other
        values = item.get("values")
        if isinstance(values, dict):
            out["values"] = self._redact_values(values, stream, when)
            declared = {f.name for f in stream.fields}
            unknown = sum(1 for k in values if k not in declared)
            if unknown:
                out["withheld_fields"] = unknown
        elif "values" in item:
            out["values"] = "[withheld]"
        return orjson.dumps(out)[:4096]

    def _redact_values(
        self, values: Mapping[str, Any], stream: Stream, when: float
    ) -> dict[str, Any]:
        specs = {f.name: f for f in stream.fields}
        located = stream.location or ()
        out: dict[str, Any] = {}
        for name, raw in values.items():
            spec = specs.get(name)
            if spec is None or name in located or spec.treatment is Treatment.DROP:
                continue
            if spec.treatment is Treatment.PSEUDONYMISE:
                out[name] = self._redact_identifier(stream.name, spec, raw, when)
            elif spec.treatment is Treatment.COUNT:
                out[name] = (
                    distinct_count(spec.identifier, raw)
                    if isinstance(raw, list) and all(isinstance(v, str) for v in raw)
                    else _WITHHELD
                )
            else:
                out[name] = _typed(spec, raw)
        if stream.location is not None:
            lat, lon = (_number(values.get(f)) for f in stream.location)
            if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
                out["cell"] = h3.latlng_to_cell(lat, lon, stream.h3_resolution)
        return out

    def _redact_identifier(self, stream: str, spec: FieldSpec, raw: Any, when: float) -> Any:
        pseudonym: Callable[[str], str] = lambda v: self.pseudonymiser.pseudonym(  # noqa: E731
            stream, spec.identifier, v, when, now=when
        )
        if isinstance(raw, str):
            return pseudonym(raw)
        if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            return [pseudonym(v) for v in raw]
        return None if raw is None else _WITHHELD


_WITHHELD = "[withheld]"
#: What a refusal of an unknown device says: the id it claimed could be anything, so it goes.
UNKNOWN_DEVICE_DETAIL = "no device with the claimed id is provisioned (the id is not kept)"
#: Keys of a reading's envelope whose absence from a redacted payload goes without saying.
_ENVELOPE = frozenset({"seq", "ts", "values", "device", "stream", "location", "position"})


def _typed(spec: FieldSpec, raw: object) -> object:
    """A kept field's value if it has the field's own type (and is a declared choice)."""
    if raw is None:
        return None
    kind = spec.type
    if kind is FieldType.BOOLEAN:
        ok = isinstance(raw, bool)
    elif kind in (FieldType.NUMBER, FieldType.INTEGER):
        number = _number(raw)
        if number is not None and spec.treatment is Treatment.GENERALISE and spec.bucket:
            return float(generalise(np.array([number]), spec.bucket)[0])
        ok = number is not None
    else:
        items = [raw] if kind is FieldType.STRING else raw
        ok = (
            isinstance(items, list)
            and all(isinstance(v, str) and len(v) <= spec.max_length for v in items)
            and (spec.choices is None or set(items) <= set(spec.choices))
        )
    return raw if ok else _WITHHELD


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count_column(kind: str | None, column: list[Any]) -> FloatArray:
    return np.array(
        [np.nan if v is None else distinct_count(kind, v) for v in column], dtype=np.float64
    )

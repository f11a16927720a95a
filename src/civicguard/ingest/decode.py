"""Decode and validate a device's message body into columnar batches, refusing bad readings.

The wire format is JSON: one reading or an array of readings, each
``{"seq": 17, "ts": 1732280000.5, "values": {...}}`` with optional ``"device"`` and
``"stream"`` that must match the authenticated device. ``ts`` is Unix seconds or ISO 8601.
Per-reading work is kept to dictionary look-ups; range checks run on whole columns.

A refusal's detail names the field and the rule it broke, never the value it was sent: a
device that puts a plate where a number or a timestamp belongs must not see that plate kept in
clear in a dead letter, a log or an answer (invariant 1).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from civicguard.catalog.model import Catalog, FieldSpec, FieldType, Stream
from civicguard.ingest import position
from civicguard.ingest.model import (
    Device,
    IngestResult,
    ReadingBatch,
    Reason,
    Rejection,
    Transport,
)

#: ``position`` is the device's own place (see :mod:`civicguard.ingest.position`).
_ENVELOPE_KEYS = frozenset({"device", "stream", "seq", "ts", "values", "location", "position"})
_ENVELOPE_NAMES = ", ".join(sorted(_ENVELOPE_KEYS))
#: Sequence numbers are stored as 64-bit signed integers.
SEQ_LIMIT = 2**63


class ReadingError(Exception):
    """A reading failed validation."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _StreamSchema:
    stream: Stream
    numeric: tuple[FieldSpec, ...]
    text: tuple[FieldSpec, ...]
    known: frozenset[str]
    required: frozenset[str]
    low: np.ndarray
    high: np.ndarray


def _schema(stream: Stream) -> _StreamSchema:
    numeric = stream.numeric_fields
    low = np.array([f.range[0] if f.range else -np.inf for f in numeric], dtype=np.float64)
    high = np.array([f.range[1] if f.range else np.inf for f in numeric], dtype=np.float64)
    return _StreamSchema(
        stream=stream,
        numeric=numeric,
        text=stream.text_fields,
        known=frozenset(f.name for f in stream.fields),
        required=frozenset(f.name for f in stream.fields if f.required),
        low=low,
        high=high,
    )


def parse_timestamp(value: object) -> float:
    """Unix seconds from a number or an ISO 8601 string with a timezone."""
    if isinstance(value, bool):
        raise ReadingError(
            Reason.WRONG_TYPE, "ts: expected Unix seconds or ISO 8601, got a boolean"
        )
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise ReadingError(Reason.OUT_OF_RANGE, "ts: number too large") from None
        if not math.isfinite(number):
            raise ReadingError(Reason.WRONG_TYPE, "ts: must be a finite number")
        return number
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ReadingError(
                Reason.WRONG_TYPE, "ts: a string must be an ISO 8601 time with a timezone"
            ) from None
        if parsed.tzinfo is None:
            raise ReadingError(Reason.WRONG_TYPE, "ts: ISO 8601 timestamps must carry a timezone")
        return parsed.timestamp()
    raise ReadingError(
        Reason.WRONG_TYPE, f"ts: expected Unix seconds or ISO 8601, got {type(value).__name__}"
    )


def _numeric(spec: FieldSpec, value: object) -> float:
    kind = spec.type
    if kind is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        raise ReadingError(Reason.WRONG_TYPE, f"values.{spec.name}: expected a boolean")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReadingError(
            Reason.WRONG_TYPE, f"values.{spec.name}: expected a number, got {_kind(value)}"
        )
    if kind is FieldType.INTEGER and not (isinstance(value, int) or float(value).is_integer()):
        raise ReadingError(Reason.WRONG_TYPE, f"values.{spec.name}: expected an integer")
    number = float(value)
    if not math.isfinite(number):
        raise ReadingError(Reason.WRONG_TYPE, f"values.{spec.name}: must be finite")
    return number


def _text(spec: FieldSpec, value: object) -> object:
    if spec.type is FieldType.STRING:
        if not isinstance(value, str):
            raise ReadingError(
                Reason.WRONG_TYPE, f"values.{spec.name}: expected a string, got {_kind(value)}"
            )
        if len(value) > spec.max_length:
            raise ReadingError(
                Reason.OUT_OF_RANGE, f"values.{spec.name}: longer than {spec.max_length} characters"
            )
        if spec.choices is not None and value not in spec.choices:
            raise ReadingError(
                Reason.NOT_ALLOWED_VALUE,
                f"values.{spec.name}: not one of {', '.join(spec.choices)}",
            )
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReadingError(Reason.WRONG_TYPE, f"values.{spec.name}: expected a list of strings")
    if len(value) > spec.max_items:
        raise ReadingError(
            Reason.OUT_OF_RANGE, f"values.{spec.name}: more than {spec.max_items} items"
        )
    if any(len(v) > spec.max_length for v in value):
        raise ReadingError(
            Reason.OUT_OF_RANGE, f"values.{spec.name}: an item is longer than {spec.max_length}"
        )
    return value


_NUMBER_TYPES = frozenset({int, float})
_BOOLEAN_TYPES = frozenset({bool})


def _numeric_column(
    spec: FieldSpec, column: list[Any], problems: dict[int, ReadingError]
) -> np.ndarray:
    """One numeric field of every reading as floats (NaN where absent or refused).

    Refused rows are recorded in ``problems`` (the first problem of a row wins).
    """
    types = set(map(type, column))
    allowed = _BOOLEAN_TYPES if spec.type is FieldType.BOOLEAN else _NUMBER_TYPES
    if not spec.required:
        allowed = allowed | {type(None)}
    out: np.ndarray | None = None
    if types <= allowed:
        with contextlib.suppress(OverflowError):  # integers beyond float range: slow path
            out = np.array(
                [math.nan if v is None else v for v in column] if type(None) in types else column,
                dtype=np.float64,
            )
    if out is None or not np.isfinite(out[~np.isnan(out)] if type(None) in types else out).all():
        out = np.empty(len(column), dtype=np.float64)
        for i, v in enumerate(column):
            if v is None:
                if spec.required:
                    problems.setdefault(
                        i, ReadingError(Reason.MISSING_FIELD, f"values.{spec.name}: missing")
                    )
                out[i] = math.nan
                continue
            try:
                out[i] = _numeric(spec, v)
            except (ReadingError, OverflowError) as exc:
                problem = (
                    exc
                    if isinstance(exc, ReadingError)
                    else ReadingError(Reason.OUT_OF_RANGE, f"values.{spec.name}: number too large")
                )
                problems.setdefault(i, problem)
                out[i] = math.nan
    if spec.type is FieldType.INTEGER:
        with np.errstate(invalid="ignore"):
            fractional = np.flatnonzero(np.isfinite(out) & (out != np.floor(out)))
        for i in fractional.tolist():
            problems.setdefault(
                i,
                ReadingError(Reason.WRONG_TYPE, f"values.{spec.name}: expected an integer"),
            )
    return out


def _text_column(
    spec: FieldSpec, column: list[Any], problems: dict[int, ReadingError]
) -> list[Any]:
    """One text field of every reading, checked (None where absent or refused)."""
    out: list[Any] = []
    for i, v in enumerate(column):
        if v is None:
            if spec.required:
                problems.setdefault(
                    i, ReadingError(Reason.MISSING_FIELD, f"values.{spec.name}: missing")
                )
            out.append(None)
            continue
        try:
            out.append(_text(spec, v))
        except ReadingError as exc:
            problems.setdefault(i, exc)
            out.append(None)
    return out


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


class Decoder:
    """Turns bodies from authenticated devices into validated, columnar, still-raw batches."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._schemas = {s.name: _schema(s) for s in catalog.streams}

    def parse_body(self, body: bytes) -> list[Any]:
        """The readings in ``body``; :class:`ReadingError` if it is not usable JSON."""
        limits = self.catalog.limits
        if len(body) > limits.max_payload_bytes:
            raise ReadingError(
                Reason.OVERSIZED,
                f"body is {len(body)} bytes; the limit is {limits.max_payload_bytes}",
            )
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ReadingError(Reason.MALFORMED_JSON, f"body is not valid JSON: {exc}") from None
        items = doc if isinstance(doc, list) else [doc]
        if not items:
            raise ReadingError(Reason.MISSING_FIELD, "body: an empty array holds no readings")
        if len(items) > limits.max_batch:
            raise ReadingError(
                Reason.BATCH_TOO_LARGE,
                f"batch has {len(items)} readings; the limit is {limits.max_batch}",
            )
        return items

    def _envelope(
        self, device: Device, schema: _StreamSchema, item: object
    ) -> tuple[int, float, dict[str, Any]]:
        """Check a reading's envelope and field names; raise at the first fault."""
        if not isinstance(item, dict):
            raise ReadingError(
                Reason.NOT_AN_OBJECT, f"reading must be a JSON object, got {_kind(item)}"
            )
        extra = item.keys() - _ENVELOPE_KEYS
        if extra:
            # Key names are the sender's text too: counted, never named.
            raise ReadingError(
                Reason.UNKNOWN_FIELD,
                f"{len(extra)} key(s) outside the envelope ({_ENVELOPE_NAMES})",
            )
        claimed = item.get("device")
        if claimed is not None and claimed != device.id:
            raise ReadingError(
                Reason.DEVICE_MISMATCH,
                f"device: names another device than the sender, {device.id!r}",
            )
        stream = item.get("stream")
        if stream is not None and stream != device.stream:
            known = isinstance(stream, str) and self.catalog.has_stream(stream)
            raise ReadingError(
                Reason.STREAM_MISMATCH if known else Reason.UNKNOWN_STREAM,
                f"stream: not the device's stream {device.stream!r}"
                + ("" if known else " nor any stream of the catalog"),
            )
        seq = item.get("seq")
        if seq is None:
            raise ReadingError(Reason.MISSING_FIELD, "seq: missing")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ReadingError(Reason.WRONG_TYPE, "seq: expected a non-negative integer")
        if seq >= SEQ_LIMIT:
            raise ReadingError(Reason.OUT_OF_RANGE, "seq: must be below 2^63")
        if "ts" not in item:
            raise ReadingError(Reason.MISSING_FIELD, "ts: missing")
        ts = parse_timestamp(item["ts"])
        values = item.get("values")
        if not isinstance(values, dict):
            raise ReadingError(
                Reason.MISSING_FIELD if values is None else Reason.WRONG_TYPE,
                "values: expected an object of field values",
            )
        unknown = values.keys() - schema.known
        if unknown:
            raise ReadingError(
                Reason.UNKNOWN_FIELD,
                f"values: {len(unknown)} field(s) not declared for {device.stream} in the catalog",
            )
        for spec in schema.stream.fields:
            if spec.required and values.get(spec.name) is None:
                raise ReadingError(Reason.MISSING_FIELD, f"values.{spec.name}: missing")
        return seq, ts, values

    def decode(
        self,
        device: Device,
        items: list[Any],
        *,
        transport: Transport,
        received_at: float,
    ) -> IngestResult:
        """Validate ``items`` sent by ``device``: valid ones become one batch, the rest refusals."""
        result = IngestResult()

        def refuse(index: int, exc: ReadingError) -> None:
            result.rejections.append(
                _rejection(exc, device, transport, received_at, index, items[index])
            )

        schema = self._schemas.get(device.stream)
        if schema is None:  # the device's stream was removed from the catalog
            gone = ReadingError(
                Reason.UNKNOWN_STREAM, f"stream {device.stream!r} is not in the catalog"
            )
            for index in range(len(items)):
                refuse(index, gone)
            return result
        kept, seqs, stamps, readings, located = self._envelopes(device, schema, items, refuse)
        if not kept:
            return result
        problems: dict[int, ReadingError] = {}
        matrix = np.empty((len(kept), len(schema.numeric)), dtype=np.float64)
        for j, spec in enumerate(schema.numeric):
            matrix[:, j] = _numeric_column(spec, [v.get(spec.name) for v in readings], problems)
        texts = {
            spec.name: _text_column(spec, [v.get(spec.name) for v in readings], problems)
            for spec in schema.text
        }
        ts = np.array(stamps, dtype=np.float64)
        positions = _positions(located, len(kept), problems) if located else None
        violations = _range_and_time_violations(schema, matrix, ts, received_at, self.catalog)
        for i, problem in enumerate(violations or ()):
            if problem is not None:
                problems.setdefault(i, ReadingError(*problem))
        if problems:
            for i in sorted(problems):
                refuse(kept[i], problems[i])
            good = [i for i in range(len(kept)) if i not in problems]
            if not good:
                return result
            matrix, ts = matrix[good], ts[good]
            positions = None if positions is None else positions[good]
            seqs = [seqs[i] for i in good]
            texts = {k: [v[i] for i in good] for k, v in texts.items()}
        n = len(seqs)
        result.batches.append(
            ReadingBatch(
                stream=device.stream,
                fields=tuple(f.name for f in schema.numeric),
                device_ids=(device.id,) * n,
                seq=np.array(seqs, dtype=np.int64),
                ts=ts,
                received_at=np.full(n, received_at),
                values=matrix,
                text=texts,
                cells=("",) * n,
                transport=transport,
                positions=positions,
            )
        )
        return result

    def _envelopes(
        self,
        device: Device,
        schema: _StreamSchema,
        items: list[Any],
        refuse: Callable[[int, ReadingError], None],
    ) -> tuple[list[int], list[int], list[float], list[dict[str, Any]], dict[int, object]]:
        """Indexes, sequence numbers, times and values of the readings whose envelope is sound.

        The last item holds the envelope ``position`` of the kept readings that carry one, by
        their place among the kept readings.
        """
        kept: list[int] = []
        located: dict[int, object] = {}
        seqs: list[int] = []
        stamps: list[float] = []
        readings: list[dict[str, Any]] = []
        required, known = schema.required, schema.known
        for index, item in enumerate(items):
            # The common case in a handful of C-level checks; anything unusual takes the
            # slow path, which finds and words the exact problem.
            if type(item) is dict and item.keys() <= _ENVELOPE_KEYS:
                seq, ts, values = item.get("seq"), item.get("ts"), item.get("values")
                if (
                    type(seq) is int
                    and 0 <= seq < SEQ_LIMIT
                    and (type(ts) is float or type(ts) is int)
                    and type(values) is dict
                    and values.keys() <= known
                    and required <= values.keys()
                    and item.get("device", device.id) == device.id
                    and item.get("stream", device.stream) == device.stream
                    and math.isfinite(ts)
                ):
                    if "position" in item:
                        located[len(kept)] = item["position"]
                    kept.append(index)
                    seqs.append(seq)
                    stamps.append(float(ts))
                    readings.append(values)
                    continue
            try:
                seq, ts, values = self._envelope(device, schema, item)
            except ReadingError as exc:
                refuse(index, exc)
                continue
            if isinstance(item, dict) and "position" in item:
                located[len(kept)] = item["position"]
            kept.append(index)
            seqs.append(seq)
            stamps.append(ts)
            readings.append(values)
        return kept, seqs, stamps, readings, located


def _positions(located: dict[int, object], n: int, problems: dict[int, ReadingError]) -> np.ndarray:
    """The ``(n, 2)`` positions of ``n`` readings (NaN where none); faults go to ``problems``."""
    out = np.full((n, 2), np.nan)
    for i, raw in located.items():
        parsed = position.parse_position(raw)
        if isinstance(parsed[0], Reason):
            reason, detail = parsed
            problems.setdefault(i, ReadingError(reason, str(detail)))
        else:
            out[i] = parsed
    return out


def _range_and_time_violations(
    schema: _StreamSchema,
    matrix: np.ndarray,
    ts: np.ndarray,
    now: float,
    catalog: Catalog,
) -> list[tuple[Reason, str] | None] | None:
    """Per row, the first violation found (or None); None overall when every row is fine."""
    with np.errstate(invalid="ignore"):
        low_bad = matrix < schema.low
        high_bad = matrix > schema.high
    out_of_range = (low_bad | high_bad).any(axis=1)
    future = ts > now + catalog.limits.max_future_s
    # A reading older than its stream's retention would be swept at once, and its period's
    # pseudonym key may already be destroyed: it is refused as too old.
    max_age = min(catalog.limits.max_age_s, schema.stream.retention_days * 86_400.0)
    old = ts < now - max_age
    bad_rows = out_of_range | future | old
    if not bad_rows.any():
        return None
    problems: list[tuple[Reason, str] | None] = [None] * len(ts)
    for i in np.flatnonzero(bad_rows):
        if future[i]:
            problems[i] = (
                Reason.TIMESTAMP_IN_FUTURE,
                f"ts: {ts[i] - now:.0f} s ahead of the platform clock "
                f"(limit {catalog.limits.max_future_s:.0f} s)",
            )
        elif old[i]:
            problems[i] = (
                Reason.TIMESTAMP_TOO_OLD,
                f"ts: {now - ts[i]:.0f} s old (limit {max_age:.0f} s"
                + (", the stream's retention)" if max_age < catalog.limits.max_age_s else ")"),
            )
        else:
            j = int(np.flatnonzero(low_bad[i] | high_bad[i])[0])
            spec = schema.numeric[j]
            lo, hi = spec.range or (-math.inf, math.inf)
            unit = f" {spec.unit}" if spec.unit else ""
            problems[i] = (
                Reason.OUT_OF_RANGE,
                f"values.{spec.name}: outside the physical range [{lo:g}, {hi:g}]{unit}",
            )
    return problems


def _rejection(
    exc: ReadingError,
    device: Device,
    transport: Transport,
    received_at: float,
    index: int,
    item: object,
) -> Rejection:
    seq = item.get("seq") if isinstance(item, dict) else None
    return Rejection(
        reason=exc.reason,
        detail=exc.detail,
        transport=transport,
        received_at=received_at,
        device_id=device.id,
        stream=device.stream,
        seq=seq if type(seq) is int and 0 <= seq < SEQ_LIMIT else None,
        index=index,
        payload=_dump(item),
    )


def _dump(item: object) -> bytes:
    """The refused reading as JSON, whatever it holds (callers may pass non-wire objects)."""
    if item is None:
        return b""
    try:
        return orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(item, default=repr).encode()

"""Replay a file of recorded readings (CSV or JSON lines) through ingest, with a progress bar.

CSV has columns ``device``, ``seq``, ``ts`` and either one column per field of the device's
stream or a ``values`` column holding a JSON object. JSON lines hold one reading per line,
each with a ``"device"`` key. Rows are grouped per device and submitted in chunks; a line
that cannot be read becomes a dead letter whose detail names its line number and the rule it
broke, never the cell's content.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from civicguard.catalog.model import FieldType
from civicguard.ingest.model import Device, IngestResult, Reason, Transport
from civicguard.ingest.registry import AuthError
from civicguard.platform import Platform

CHUNK = 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """What became of a replayed file."""

    accepted: int
    duplicates: int
    rejected: int
    reasons: Counter[str] = field(default_factory=Counter)
    #: The first refusals as ``"line N: reason: detail"``, to show the operator.
    problems: tuple[str, ...] = ()

    def summary(self) -> str:
        """One paragraph for the console."""
        text = f"{self.accepted} accepted, {self.duplicates} duplicates, {self.rejected} rejected"
        if self.reasons:
            text += " (" + ", ".join(f"{r}: {n}" for r, n in self.reasons.most_common()) + ")"
        return text


class _BadCellError(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class _Tally:
    accepted: int = 0
    duplicates: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def refused(self, line: int, reason: Reason, detail: str) -> None:
        self.reasons[reason.value] += 1
        if len(self.problems) < 100:
            self.problems.append(f"line {line}: {reason.value}: {detail}")


class _Replayer:
    """Groups readings per device and submits them in chunks."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.tally = _Tally()
        self._pending: dict[str, tuple[Device, list[Any], list[int]]] = {}

    def device(self, device_id: object, line: int, raw: bytes) -> Device | None:
        """The provisioned, usable device ``device_id``, or None after refusing the line."""
        if not isinstance(device_id, str) or not device_id:
            self.refuse(line, Reason.MISSING_FIELD, "device: missing or not a string", raw, None)
            return None
        try:
            return self.platform.registry.by_broker_identity(device_id)
        except AuthError as exc:
            self.refuse(line, exc.reason, exc.detail, raw, device_id)
            return None

    def refuse(
        self, line: int, reason: Reason, detail: str, raw: bytes, device_id: str | None
    ) -> None:
        """Keep an unreadable line as a dead letter (content withheld, as for any unverified)."""
        self.platform.ingest.refuse(
            reason, f"line {line}: {detail}", Transport.REPLAY, raw, device_id=device_id
        )
        self.tally.refused(line, reason, detail)

    def add(self, device: Device, item: dict[str, Any], line: int) -> None:
        """Queue one reading; submit the device's chunk when it is full."""
        pending = self._pending.get(device.id)
        if pending is None:
            pending = self._pending[device.id] = (device, [], [])
        pending[1].append(item)
        pending[2].append(line)
        if len(pending[1]) >= CHUNK:
            self._submit(device.id)

    def flush(self) -> None:
        """Submit everything still queued."""
        for device_id in list(self._pending):
            self._submit(device_id)

    def _submit(self, device_id: str) -> None:
        device, items, lines = self._pending.pop(device_id)
        result: IngestResult = self.platform.ingest.submit_items(device, items, Transport.REPLAY)
        self.tally.accepted += result.accepted
        self.tally.duplicates += result.duplicates
        for rejection in result.rejections:
            line = lines[rejection.index] if rejection.index is not None else 0
            self.tally.refused(line, rejection.reason, rejection.detail)

    def report(self) -> ReplayReport:
        """The outcome so far."""
        t = self.tally
        return ReplayReport(
            accepted=t.accepted,
            duplicates=t.duplicates,
            rejected=sum(t.reasons.values()),
            reasons=Counter(t.reasons),
            problems=tuple(t.problems),
        )


def replay_file(
    platform: Platform, path: Path | str, console: Console | None = None
) -> ReplayReport:
    """Ingest every reading in the CSV or JSON-lines file at ``path`` (devices must exist).

    A progress bar is drawn on ``console`` when one is given.
    """
    path = Path(path)
    replayer = _Replayer(platform)
    with path.open("rb") as counting:
        total = sum(chunk.count(b"\n") for chunk in iter(lambda: counting.read(1 << 20), b""))
    rows = _csv_rows(path, replayer) if _is_csv(path) else _json_lines(path, replayer)
    progress = Progress(
        TextColumn(f"replaying {path.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
    )
    with progress:
        task = progress.add_task("replay", total=max(total, 1))
        done = 0
        for line, device, item in rows:
            replayer.add(device, item, line)
            if line - done >= 1_000:
                progress.update(task, completed=line)
                done = line
        replayer.flush()
        progress.update(task, completed=max(total, 1))
    return replayer.report()


def _is_csv(path: Path) -> bool:
    if path.suffix.lower() == ".csv":
        return True
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        return False
    with path.open("rb") as f:
        return not f.read(256).lstrip().startswith(b"{")


def _json_lines(path: Path, replayer: _Replayer) -> Iterator[tuple[int, Device, dict[str, Any]]]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                item = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                replayer.refuse(number, Reason.MALFORMED_JSON, f"not valid JSON: {exc}", text, None)
                continue
            if not isinstance(item, dict):
                replayer.refuse(
                    number, Reason.NOT_AN_OBJECT, "a line must hold one JSON object", text, None
                )
                continue
            device = replayer.device(item.pop("device", None), number, text)
            if device is not None:
                yield number, device, item


def _csv_rows(path: Path, replayer: _Replayer) -> Iterator[tuple[int, Device, dict[str, Any]]]:
    catalog = replayer.platform.catalog
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            number = reader.line_num
            raw = ",".join(v or "" for v in row.values() if isinstance(v, str)).encode()
            device = replayer.device(row.get("device"), number, raw)
            if device is None:
                continue
            try:
                fields = (
                    catalog.stream(device.stream).fields
                    if catalog.has_stream(device.stream)
                    else ()
                )
                item = _csv_reading(row, fields)
            except _BadCellError as exc:
                replayer.refuse(number, exc.reason, exc.detail, raw, device.id)
                continue
            yield number, device, item


_ENVELOPE = frozenset({"device", "seq", "ts", "stream", "values"})


def _csv_reading(row: dict[str, Any], fields: tuple[Any, ...]) -> dict[str, Any]:
    """One CSV row as a wire reading, cells converted to the stream's field types."""
    item: dict[str, Any] = {}
    seq = (row.get("seq") or "").strip()
    try:
        item["seq"] = int(seq)
    except ValueError:
        raise _BadCellError(Reason.WRONG_TYPE, "seq: not an integer") from None
    ts = (row.get("ts") or "").strip()
    if not ts:
        raise _BadCellError(Reason.MISSING_FIELD, "ts: missing")
    try:
        item["ts"] = float(ts)
    except ValueError:
        item["ts"] = ts  # ISO 8601; ingest parses and checks it
    if row.get("stream"):
        item["stream"] = row["stream"]
    packed = (row.get("values") or "").strip()
    if packed:
        try:
            values = orjson.loads(packed)
        except orjson.JSONDecodeError as exc:
            raise _BadCellError(Reason.MALFORMED_JSON, f"values: not valid JSON: {exc}") from None
        item["values"] = values
        return item
    specs = {f.name: f.type for f in fields}
    values = {}
    for name, cell in row.items():
        if name is None or name in _ENVELOPE or cell is None or cell.strip() == "":
            continue
        kind = specs.get(name)
        # A column of another stream's field: ingest refuses it as an unknown field.
        values[name] = cell if kind is None else _cell(name, cell.strip(), kind)
    item["values"] = values
    return item


def _cell(name: str, cell: str, kind: FieldType) -> Any:
    try:
        if kind is FieldType.BOOLEAN:
            lowered = cell.lower()
            if lowered in {"true", "1", "yes"}:
                return True
            if lowered in {"false", "0", "no"}:
                return False
            raise ValueError(cell)
        if kind is FieldType.INTEGER:
            number = float(cell)
            return int(number) if number.is_integer() else number
        if kind is FieldType.NUMBER:
            return float(cell)
        if kind is FieldType.STRING_LIST:
            return orjson.loads(cell) if cell.startswith("[") else cell.split(";")
    except (ValueError, orjson.JSONDecodeError):
        raise _BadCellError(Reason.WRONG_TYPE, f"values.{name}: not a {kind.value}") from None
    return cell

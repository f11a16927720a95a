"""What every live detector shares: places, episodes, a horizon, grouping and evidence.

Detectors score whole batches with NumPy; this module holds the few pieces they all need to
turn a flagged row into an :class:`~civicguard.detect.model.Alert` that a person can read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
import numpy.typing as npt

from civicguard.catalog.model import Catalog, FieldSpec
from civicguard.detect.base import grow
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch

BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

#: A flagged condition that stays clear this long (seconds of reading time) may alert again.
DEFAULT_REARM_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Place:
    """Where a device stands, as an alert shows it."""

    name: str
    cell: str
    lat: float | None
    lon: float | None


class Places:
    """Looks devices up in the registry to name and place them in alerts.

    >>> from civicguard.catalog.loader import demo_catalog
    >>> places = Places(demo_catalog(), lambda device_id: None)
    >>> places.of("power.substation", "sub-012").name
    'substation sub-012'
    """

    def __init__(self, catalog: Catalog, device: Callable[[str], Device | None]) -> None:
        self._catalog = catalog
        self._device = device

    def of(self, stream: str, device_id: str | None, cell: str = "") -> Place:
        """The place of ``device_id``; ``cell`` is used when the batch already placed it."""
        device = self._device(device_id) if device_id else None
        noun = stream.rsplit(".", 1)[-1].replace("_", " ") if stream else "device"
        if device is None:
            return Place(name=f"{noun} {device_id or 'unknown'}", cell=cell, lat=None, lon=None)
        if not cell and self._catalog.has_stream(device.stream):
            resolution = self._catalog.stream(device.stream).h3_resolution
            cell = str(h3.latlng_to_cell(device.lat, device.lon, resolution))
        name = f"{device.label} ({device.id})" if device.label else f"{noun} {device.id}"
        return Place(name=name, cell=cell, lat=device.lat, lon=device.lon)

    def is_revoked(self, device_id: str) -> bool:
        """True if the registry knows ``device_id`` and has revoked it."""
        device = self._device(device_id)
        return device is not None and device.revoked


class Episodes:
    """One alert per (device slot, condition) per episode.

    An episode starts at the first flagged reading and lasts while flagged readings keep
    coming; once none has come for ``rearm_s`` seconds of reading time, the next one starts
    a new episode. So a long attack raises one alert, not one per reading.

    >>> episodes = Episodes(conditions=1, rearm_s=10.0)
    >>> episodes.open(np.array([0, 0, 1]), np.array([0, 0, 0]), np.array([1.0, 2.0, 1.5])).tolist()
    [True, False, True]
    >>> episodes.open(np.array([0, 0]), np.array([0, 0]), np.array([5.0, 20.0])).tolist()
    [False, True]
    """

    def __init__(self, *, conditions: int, rearm_s: float = DEFAULT_REARM_S) -> None:
        self.conditions = max(conditions, 1)
        self.rearm_s = rearm_s
        self._last = np.full((0, self.conditions), -np.inf)

    def open(self, slots: IndexArray, conditions: IndexArray, ts: FloatArray) -> BoolArray:
        """For flagged readings at (``slots``, ``conditions``, ``ts``): which start an episode."""
        n = len(slots)
        if n == 0:
            return np.zeros(0, dtype=np.bool_)
        self._last = grow(self._last, int(slots.max()) + 1, -np.inf)
        key = slots.astype(np.intp) * self.conditions + conditions.astype(np.intp)
        order = np.lexsort((ts, key))
        k = key[order]
        t = ts[order]
        flat = self._last.reshape(-1)
        first = group_starts(k)
        previous = np.empty(n)
        previous[1:] = t[:-1]
        previous[first] = flat[k[first]]
        fresh = t - previous > self.rearm_s
        np.maximum.at(flat, k, t)
        out = np.empty(n, dtype=np.bool_)
        out[order] = fresh
        return out

    def open_one(self, slot: int, ts: float, condition: int = 0) -> bool:
        """:meth:`open` for one flagged event (a refusal, say): whether it starts an episode."""
        return bool(self.open(np.array([slot]), np.array([condition]), np.array([ts]))[0])


class Horizon:
    """How far the platform has got through its readings: where detectors of absence measure to.

    A detector of absence (a device silent, a door not closed) asks at each tick whether
    something has failed to come for longer than a limit. While readings keep coming through,
    it measures up to the newest receipt time processed (never later than the clock), not up to
    the clock: a pipeline behind its devices (a backlog under load) has not yet seen what waits
    in the backlog, a device's next report or a door's close, and must not take it for missing.
    Once nothing at all has come through for longer than the limit, the clock is the measure
    again, so that an absence while everything is quiet is still raised.

    >>> horizon = Horizon()
    >>> horizon.note(np.array([100.0, 101.0]), now=140.0)  # processed 39 s late
    >>> float(horizon.at(150.0, 30.0))  # still coming through: up to what was processed
    101.0
    >>> horizon.at(171.0, np.array([30.0, 60.0])).tolist()  # nothing for 31 s: the clock for 30
    [171.0, 101.0]
    """

    def __init__(self) -> None:
        #: The newest receipt time among the readings processed, and when it last moved on.
        self._processed_to = -math.inf
        self._progress_at = -math.inf

    def note(self, received_at: FloatArray, now: float) -> None:
        """Readings received at ``received_at`` have come through the pipeline at ``now``."""
        if len(received_at) == 0:
            return
        newest = float(received_at.max())
        if newest > self._processed_to:
            self._processed_to = newest
            self._progress_at = now

    def at(self, now: float, limit: float | FloatArray) -> FloatArray:
        """The time up to which an absence allowed ``limit`` seconds is measured (per limit)."""
        processed = min(now, self._processed_to)
        return np.where(now - self._progress_at > limit, now, processed)


def group_starts(sorted_keys: npt.NDArray[Any]) -> BoolArray:
    """True where a run of equal keys begins in a sorted array."""
    starts = np.ones(len(sorted_keys), dtype=np.bool_)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def group_ends(sorted_keys: npt.NDArray[Any]) -> BoolArray:
    """True where a run of equal keys ends in a sorted array."""
    ends = np.ones(len(sorted_keys), dtype=np.bool_)
    ends[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    return ends


def rank_in_group(sorted_keys: npt.NDArray[Any]) -> IndexArray:
    """Position of each element inside its run of equal keys (0 for the first).

    >>> rank_in_group(np.array([3, 3, 5, 7, 7, 7])).tolist()
    [0, 1, 0, 0, 1, 2]
    """
    n = len(sorted_keys)
    index = np.arange(n, dtype=np.intp)
    start = np.where(group_starts(sorted_keys), index, 0)
    return index - np.maximum.accumulate(start) if n else index


def number(value: float) -> float | None:
    """A float fit for JSON: non-finite values become ``None``."""
    value = float(value)
    return value if math.isfinite(value) else None


def reading(batch: ReadingBatch, i: int) -> dict[str, Any]:
    """Reading ``i`` of ``batch`` as alert evidence: seq, ts and its values.

    Lists (pseudonymised MAC sets) are summarised by their length so that evidence stays small.
    """
    values: dict[str, Any] = {}
    for j, name in enumerate(batch.fields):
        v = float(batch.values[i, j])
        if math.isfinite(v):
            values[name] = v
    for name, column in batch.text.items():
        v = column[i]
        if isinstance(v, list | tuple):
            values[f"{name}_count"] = len(v)
        elif v is not None:
            values[name] = v
    return {"seq": int(batch.seq[i]), "ts": float(batch.ts[i]), "values": values}


def quantity(value: float, spec: FieldSpec) -> str:
    """A value with its unit for a title: ``51.20 Hz``."""
    return f"{value:.2f} {spec.unit}" if spec.unit else f"{value:.2f}"


def label(spec: FieldSpec) -> str:
    """A field's name as a title shows it: ``Mean speed``."""
    return spec.name.replace("_", " ").capitalize()


def figure(value: float, decimals: int = 2) -> str:
    """A number as an explanation quotes it: at most ``decimals`` places, no trailing zeros.

    >>> figure(3.0), figure(51.2), figure(0.123456), figure(-0.001), figure(1234.5, 0)
    ('3', '51.2', '0.12', '0', '1234')
    """
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def explain(*, seen: str, against: str, sure: str, detector: str, score: float) -> str:
    """The plain-language explanation every alert carries, in one fixed shape.

    What was seen, against what baseline or threshold; how sure the detector is; its score and
    name, so that an operator can tell which detector to tune.

    >>> explain(seen="Level 3 m", against="above 2 m", sure="Certain", detector="band", score=1.0)
    'Level 3 m, above 2 m. Certain (score 1, detector band).'
    """
    return f"{seen}, {against}. {sure} (score {figure(score)}, detector {detector})."


def alert(
    *,
    detector: str,
    kind: str,
    severity: Severity,
    title: str,
    explanation: str,
    stream: str,
    device_id: str | None,
    place: Place,
    ts: float,
    now: float,
    evidence: dict[str, Any],
) -> Alert:
    """An alert at ``place``; a small constructor so that detectors read as their logic."""
    return Alert(
        detector=detector,
        kind=kind,
        severity=severity,
        title=title,
        explanation=explanation,
        stream=stream,
        device_id=device_id,
        cell=place.cell,
        ts=float(ts),
        created_at=float(now),
        evidence=evidence,
        lat=place.lat,
        lon=place.lon,
    )


def reading_alert(
    detector: str,
    batch: ReadingBatch,
    row: int,
    place: Place,
    now: float,
    *,
    kind: str,
    severity: Severity,
    title: str,
    explanation: str,
    evidence: dict[str, Any],
) -> Alert:
    """An alert raised by reading ``row`` of ``batch``: its stream, device and time."""
    return alert(
        detector=detector,
        kind=kind,
        severity=severity,
        title=title,
        explanation=explanation,
        stream=batch.stream,
        device_id=batch.device_ids[row],
        place=place,
        ts=float(batch.ts[row]),
        now=now,
        evidence=evidence,
    )

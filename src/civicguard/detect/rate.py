"""Rate of change: a field that moves faster than physics allows (its catalog ``max_rate``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from civicguard.catalog.model import Catalog, FieldSpec
from civicguard.detect._support import (
    DEFAULT_REARM_S,
    Episodes,
    FloatArray,
    Places,
    explain,
    figure,
    group_ends,
    group_starts,
    label,
    reading,
    reading_alert,
)
from civicguard.detect.base import Detector, SlotIndex, grow
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(kw_only=True)
class _StreamState:
    specs: tuple[FieldSpec, ...]
    limits: FloatArray
    min_dt: float
    episodes: Episodes
    slots: SlotIndex = field(default_factory=SlotIndex)
    #: Last value, time and seq of each (device slot, field), NaN before the first reading.
    value: FloatArray = field(default_factory=lambda: np.empty((0, 0)))
    ts: FloatArray = field(default_factory=lambda: np.empty((0, 0)))
    seq: FloatArray = field(default_factory=lambda: np.empty((0, 0)))


class RateOfChangeDetector(Detector):
    """Alerts when ``|Δvalue / Δt|`` between consecutive readings of a device exceeds ``max_rate``.

    A device's first reading only sets its baseline. Readings closer together than half the
    stream's report interval are measured over that half interval, so that a burst of readings
    stamped milliseconds apart does not turn sensor noise into an impossible rate.
    """

    name = "rate_of_change"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        rearm_s: float = DEFAULT_REARM_S,
        severe_factor: float = 10.0,
    ) -> None:
        self._places = Places(catalog, device)
        self._severe_factor = severe_factor
        self._states: dict[str, _StreamState] = {}
        for stream in catalog.streams:
            specs = tuple(f for f in stream.numeric_fields if f.max_rate is not None)
            if specs:
                k = len(specs)
                self._states[stream.name] = _StreamState(
                    specs=specs,
                    limits=np.array([f.max_rate for f in specs], dtype=np.float64),
                    min_dt=0.5 * stream.report_interval_s,
                    episodes=Episodes(conditions=k, rearm_s=rearm_s),
                    value=np.full((0, k), np.nan),
                    ts=np.full((0, k), np.nan),
                    seq=np.full((0, k), np.nan),
                )

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Compare each reading with the device's previous one, field by field."""
        state = self._states.get(batch.stream)
        if state is None or len(batch) == 0:
            return []
        slots = state.slots.lookup(batch.device_ids)
        size = len(state.slots)
        state.value = grow(state.value, size, np.nan)
        state.ts = grow(state.ts, size, np.nan)
        state.seq = grow(state.seq, size, np.nan)
        alerts: list[Alert] = []
        for j, spec in enumerate(state.specs):
            if spec.name not in batch.fields:
                continue
            alerts.extend(self._field(state, batch, slots, j, spec=spec, now=now))
        return alerts

    def _field(
        self,
        state: _StreamState,
        batch: ReadingBatch,
        slots: np.ndarray,
        j: int,
        *,
        spec: FieldSpec,
        now: float,
    ) -> list[Alert]:
        column = batch.values[:, batch.fields.index(spec.name)]
        rows = np.flatnonzero(~np.isnan(column))
        if len(rows) == 0:
            return []
        order = rows[np.lexsort((batch.ts[rows], slots[rows]))]
        s, t, x = slots[order], batch.ts[order], column[order]
        seq = batch.seq[order].astype(np.float64)
        first = group_starts(s)
        prev_x, prev_t, prev_seq = np.empty_like(x), np.empty_like(t), np.empty_like(seq)
        prev_x[1:], prev_t[1:], prev_seq[1:] = x[:-1], t[:-1], seq[:-1]
        prev_x[first] = state.value[s[first], j]
        prev_t[first] = state.ts[s[first], j]
        prev_seq[first] = state.seq[s[first], j]
        dt = t - prev_t
        with np.errstate(invalid="ignore"):
            rate = np.abs(x - prev_x) / np.maximum(dt, state.min_dt)
            # A reading older than the one before it (late delivery) has no rate to judge.
            fast = (dt > 0) & (rate > state.limits[j])
        # Keep the newest reading of each device as its baseline, even if this batch was late.
        last = group_ends(s)
        newer = ~(state.ts[s[last], j] > t[last])
        keep = s[last][newer]
        state.value[keep, j] = x[last][newer]
        state.ts[keep, j] = t[last][newer]
        state.seq[keep, j] = seq[last][newer]
        if not fast.any():
            return []
        hits = np.flatnonzero(fast)
        fresh = state.episodes.open(s[hits], np.full(len(hits), j, dtype=np.intp), t[hits])
        alerts = []
        for h in hits[fresh].tolist():
            alerts.append(
                self._alert(
                    batch,
                    int(order[h]),
                    spec,
                    previous=(float(prev_x[h]), float(prev_t[h]), float(prev_seq[h])),
                    rate=float(rate[h]),
                    now=now,
                )
            )
        return alerts

    def _alert(
        self,
        batch: ReadingBatch,
        row: int,
        spec: FieldSpec,
        *,
        previous: tuple[float, float, float],
        rate: float,
        now: float,
    ) -> Alert:
        assert spec.max_rate is not None
        prev_value, prev_ts, prev_seq = previous
        value = float(batch.values[row, batch.fields.index(spec.name)])
        device_id = batch.device_ids[row]
        place = self._places.of(batch.stream, device_id, batch.cells[row])
        unit = f" {spec.unit}" if spec.unit else ""
        dt = float(batch.ts[row]) - prev_ts
        title = (
            f"{label(spec)} changed by {value - prev_value:+.2f}{unit} in {dt:.1f} s "
            f"({rate:.2f}{unit}/s, plausible at most {spec.max_rate:g}{unit}/s) at {place.name}"
        )
        severe = rate > self._severe_factor * spec.max_rate
        explanation = explain(
            seen=(
                f"{label(spec)} at {place.name} went from {figure(prev_value)} to "
                f"{figure(value)}{unit} in {figure(dt, 1)} s, {figure(rate)}{unit}/s"
            ),
            against=f"while it can plausibly change by at most {figure(spec.max_rate)}{unit}/s",
            sure=(
                f"Sure: {figure(rate / spec.max_rate, 1)} times the plausible rate between two "
                "consecutive readings; a real process cannot move that fast"
            ),
            detector=self.name,
            score=rate,
        )
        return reading_alert(
            self.name,
            batch,
            row,
            place,
            now,
            kind="implausible_rate_of_change",
            severity=Severity.HIGH if severe else Severity.MEDIUM,
            title=title,
            explanation=explanation,
            evidence={
                "field": spec.name,
                "unit": spec.unit,
                "max_rate": spec.max_rate,
                "score": rate,
                "readings": [
                    {
                        "seq": int(prev_seq) if np.isfinite(prev_seq) else None,
                        "ts": prev_ts,
                        "values": {spec.name: prev_value},
                    },
                    reading(batch, row),
                ],
            },
        )

"""Normal bands: a reading outside the band its catalog field declares healthy raises an alert."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from civicguard.catalog.model import Catalog, FieldSpec
from civicguard.detect._support import (
    DEFAULT_REARM_S,
    Episodes,
    FloatArray,
    Places,
    explain,
    figure,
    label,
    quantity,
    reading,
    reading_alert,
)
from civicguard.detect.base import Detector, SlotIndex
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bands:
    specs: tuple[FieldSpec, ...]
    low: FloatArray
    high: FloatArray


class NormalBandDetector(Detector):
    """Alerts when a field leaves its catalog ``normal`` band, once per device and field episode.

    The alert is high when the reading is beyond the band by more than ``severe_fraction`` of
    the band's width, medium otherwise.
    """

    name = "normal_band"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        rearm_s: float = DEFAULT_REARM_S,
        severe_fraction: float = 0.25,
    ) -> None:
        self._places = Places(catalog, device)
        self._severe_fraction = severe_fraction
        self._rearm_s = rearm_s
        self._bands: dict[str, _Bands] = {}
        for stream in catalog.streams:
            specs = tuple(f for f in stream.numeric_fields if f.normal is not None)
            if specs:
                self._bands[stream.name] = _Bands(
                    specs=specs,
                    low=np.array([f.normal[0] for f in specs if f.normal]),
                    high=np.array([f.normal[1] for f in specs if f.normal]),
                )
        self._slots: dict[str, SlotIndex] = {}
        self._episodes: dict[str, Episodes] = {}

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Flag readings outside their band; alert on the first of each episode."""
        bands = self._bands.get(batch.stream)
        if bands is None or len(batch) == 0:
            return []
        present = [i for i, f in enumerate(bands.specs) if f.name in batch.fields]
        if not present:
            return []
        columns = [batch.fields.index(bands.specs[i].name) for i in present]
        low, high = bands.low[present], bands.high[present]
        values = batch.values[:, columns]
        # NaN (an absent optional field) compares False on both sides: never out of band.
        outside = (values < low) | (values > high)
        if not outside.any():
            return []
        rows, cols = np.nonzero(outside)
        slots_index = self._slots.setdefault(batch.stream, SlotIndex())
        episodes = self._episodes.setdefault(
            batch.stream, Episodes(conditions=len(bands.specs), rearm_s=self._rearm_s)
        )
        ids = [batch.device_ids[r] for r in rows]
        slots = slots_index.lookup(ids)
        conditions = np.asarray(present, dtype=np.intp)[cols]
        fresh = episodes.open(slots, conditions, batch.ts[rows])
        alerts = []
        for r, c in zip(rows[fresh].tolist(), cols[fresh].tolist(), strict=True):
            alerts.append(self._alert(batch, r, bands.specs[present[c]], now))
        return alerts

    def _alert(self, batch: ReadingBatch, row: int, spec: FieldSpec, now: float) -> Alert:
        assert spec.normal is not None
        low, high = spec.normal
        value = float(batch.values[row, batch.fields.index(spec.name)])
        excess = low - value if value < low else value - high
        width = high - low
        severe = width <= 0 or excess > self._severe_fraction * width
        device_id = batch.device_ids[row]
        place = self._places.of(batch.stream, device_id, batch.cells[row])
        unit = f" {spec.unit}" if spec.unit else ""
        title = (
            f"{label(spec)} {quantity(value, spec)} outside normal band "
            f"{low:.2f}\u2013{high:.2f}{unit} at {place.name}"
        )
        explanation = explain(
            seen=f"{label(spec)} read {figure(value)}{unit} at {place.name}",
            against=(
                f"{'below' if value < low else 'above'} its normal band of {figure(low)} to "
                f"{figure(high)}{unit} by {figure(excess)}{unit}"
            ),
            sure=(
                "Certain: the reading itself lies outside the band, "
                f"{'more' if severe else 'less'} than {figure(100 * self._severe_fraction)}% "
                "of the band's width beyond it"
            ),
            detector=self.name,
            score=excess,
        )
        return reading_alert(
            self.name,
            batch,
            row,
            place,
            now,
            kind="outside_normal_band",
            severity=Severity.HIGH if severe else Severity.MEDIUM,
            title=title,
            explanation=explanation,
            evidence={
                "field": spec.name,
                "unit": spec.unit,
                "value": value,
                "normal": [low, high],
                "score": excess,
                "readings": [reading(batch, row)],
            },
        )

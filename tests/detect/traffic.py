"""Normal synthetic city traffic for detector tests: a daily pattern plus gaussian noise.

Every numeric field follows a sine over a compressed day with device-specific phase, plus
noise, and stays within its normal band (or the lower part of its range) and well under its
``max_rate``. Booleans hold steady at their resting value: 1 (pumps running, access granted)
except those in ``AT_REST``, like a door's ``open``, which is 0: a door is closed at rest.
"""

from __future__ import annotations

import math
from typing import Any

import h3
import numpy as np
import orjson

from civicguard.catalog.model import Catalog, FieldSpec, FieldType, Stream
from civicguard.ingest.model import Device, ReadingBatch, Transport

#: A compressed day, so that a run of minutes crosses a fair part of the daily pattern.
DAY_S = 14_400.0
START = 1_790_000_000.0
#: Seconds between two readings of a device, as the tests play the traffic.
PACE_S = 1.0
#: Booleans whose resting value is 0 rather than 1.
AT_REST = {"open": 0.0}


def _shape(spec: FieldSpec) -> tuple[float, float, float, float, float]:
    """(low, high, centre, amplitude, noise) of a field's normal behaviour."""
    if spec.normal is not None:
        low, high = spec.normal
        width = high - low
        centre, amplitude, noise = (low + high) / 2, 0.2 * width, 0.02 * width
    else:
        low, high = spec.range or (0.0, 100.0)
        width = high - low
        centre, amplitude, noise = low + 0.35 * width, 0.1 * width, 0.01 * width
    if spec.max_rate is not None:
        noise = min(noise, spec.max_rate / 10)
        amplitude = min(amplitude, 0.1 * spec.max_rate * DAY_S / (2 * math.pi))
    return low, high, centre, amplitude, noise


def normal_column(
    spec: FieldSpec, ts: np.ndarray, phase: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Normal values of ``spec`` at times ``ts`` for devices with daily ``phase`` (radians)."""
    if spec.type is FieldType.BOOLEAN:
        return np.full(len(ts), AT_REST.get(spec.name, 1.0))
    low, high, centre, amplitude, noise = _shape(spec)
    x = centre + amplitude * np.sin(2 * math.pi * ts / DAY_S + phase)
    x = x + rng.normal(0.0, noise, len(ts))
    x = np.clip(x, low, high)
    return np.round(x) if spec.type is FieldType.INTEGER else x


class CityTraffic:
    """Devices of every stream (or the ones asked for) and their normal readings."""

    def __init__(
        self, catalog: Catalog, per_stream: int = 5, seed: int = 1, streams: tuple[str, ...] = ()
    ) -> None:
        self.catalog = catalog
        self.rng = np.random.default_rng(seed)
        self.devices: dict[str, list[Device]] = {}
        # The traffic plays one reading a second; by default it leaves out streams that report
        # more slowly (the hourly SCADA historian), which a reading a second would flood.
        names = streams or tuple(s.name for s in catalog.streams if s.report_interval_s <= PACE_S)
        for s, name in enumerate(names):
            prefix = name.replace(".", "-")
            self.devices[name] = [
                Device(
                    id=f"{prefix}-{i:03d}",
                    stream=name,
                    lat=21.88 + 0.004 * i + 0.0005 * s,
                    lon=-102.29 + 0.003 * s,
                    district=f"district-{i % 3}",
                )
                for i in range(per_stream)
            ]
        self.by_id = {d.id: d for ds in self.devices.values() for d in ds}
        self.phase = {d.id: float(self.rng.uniform(0, 2 * math.pi)) for d in self.by_id.values()}

    def lookup(self, device_id: str) -> Device | None:
        """The device registry as detectors see it."""
        return self.by_id.get(device_id)

    def batch(
        self, stream: str, ts: np.ndarray, device_index: np.ndarray, seq: np.ndarray
    ) -> ReadingBatch:
        """A protected-looking batch of normal readings (what the privacy gateway emits)."""
        spec = self.catalog.stream(stream)
        devices = [self.devices[stream][i] for i in device_index.tolist()]
        phase = np.array([self.phase[d.id] for d in devices])
        kept = tuple(f for f in spec.numeric_fields if f.treatment.value != "drop")
        values = np.column_stack(
            [normal_column(f, ts, phase, self.rng) for f in kept] or [np.zeros(len(ts))]
        )[:, : len(kept)]
        text = {f.name: [self._text(f) for _ in devices] for f in spec.text_fields}
        return ReadingBatch(
            stream=stream,
            fields=tuple(f.name for f in kept),
            device_ids=tuple(d.id for d in devices),
            seq=seq.astype(np.int64),
            ts=ts.astype(np.float64),
            received_at=ts.astype(np.float64) + 0.05,
            values=values.astype(np.float64),
            text=text,
            cells=tuple(self.cell(d) for d in devices),
            transport=Transport.SIMULATOR,
        )

    def cell(self, device: Device) -> str:
        """The device's H3 cell at its stream's resolution."""
        resolution = self.catalog.stream(device.stream).h3_resolution
        return str(h3.latlng_to_cell(device.lat, device.lon, resolution))

    def _text(self, spec: FieldSpec) -> Any:
        if spec.type is FieldType.STRING_LIST:
            return [f"pseudo-{self.rng.integers(1_000_000)}" for _ in range(3)]
        if spec.choices:
            return spec.choices[int(self.rng.integers(len(spec.choices)))]
        return f"pseudo-{self.rng.integers(1_000_000)}"

    def values(self, device: Device, ts: float, **override: float | bool) -> dict[str, Any]:
        """The wire ``values`` of one normal reading of ``device`` at ``ts``, with overrides."""
        stream: Stream = self.catalog.stream(device.stream)
        out: dict[str, Any] = {}
        t = np.array([ts])
        phase = np.array([self.phase[device.id]])
        for f in stream.fields:
            if f.type is FieldType.BOOLEAN:
                out[f.name] = bool(AT_REST.get(f.name, 1.0))
            elif f.type.numeric:
                x = float(normal_column(f, t, phase, self.rng)[0])
                out[f.name] = int(x) if f.type is FieldType.INTEGER else x
            elif f.type is FieldType.STRING_LIST:
                out[f.name] = ["02:00:00:00:00:01", "02:00:00:00:00:02"]
            elif f.choices:
                out[f.name] = f.choices[0]
            else:
                out[f.name] = "AGS1234"
        out.update(override)
        return out

    def body(self, device: Device, seq: int, ts: float, **override: float | bool) -> bytes:
        """A wire body of one reading."""
        return orjson.dumps({"seq": seq, "ts": ts, "values": self.values(device, ts, **override)})

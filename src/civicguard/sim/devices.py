"""Simulated devices: what each kind of sensor reports, one vectorised draw per stream per tick.

Every numeric field follows a daily pattern (by local time of day) plus gaussian noise. The
catalog bounds the result: values stay inside the field's ``normal`` band with a margin, and
the noise is scaled so that the change from one reading to the next stays well under the
field's ``max_rate``. The catalog is read, never restated here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from civicguard.catalog.model import FieldType, Stream
from civicguard.ingest.model import Device

#: Noise is cut at this many standard deviations: sensors smooth their raw signal.
NOISE_CLIP = 2.5
#: Share of a ``normal`` band kept free at each edge.
BAND_MARGIN = 0.08


def _local_zone() -> timezone | ZoneInfo:
    try:
        return ZoneInfo("America/Mexico_City")
    except ZoneInfoNotFoundError:  # no tz database on this box; Mexico has no DST since 2022
        return timezone(timedelta(hours=-6))


CITY_ZONE = _local_zone()


def local_hour(ts: float) -> float:
    """Hour of the day (0-24, fractional) in the city's time zone at Unix time ``ts``."""
    moment = datetime.fromtimestamp(ts, UTC).astimezone(CITY_ZONE)
    return moment.hour + moment.minute / 60 + moment.second / 3600


def daily_shape(shape: str, hour: float) -> float:
    """Activity between 0 and 1 over the day for the named pattern.

    >>> round(daily_shape("day", 15.0), 2), round(daily_shape("day", 3.0), 2)
    (1.0, 0.0)
    """
    if shape == "day":
        return 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)
    if shape == "night":
        return 1.0 - daily_shape("day", hour)
    if shape == "traffic":  # morning and evening rush
        peaks = math.exp(-(((hour - 8) / 1.5) ** 2)) + 0.9 * math.exp(-(((hour - 18.5) / 2) ** 2))
        return min(1.0, 0.15 + peaks)
    if shape == "evening":  # squares and markets fill towards the evening
        return math.exp(-(((hour - 19) / 3.5) ** 2))
    return 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldProfile:
    """How one numeric field behaves: per-device base drawn from a range, daily swing, noise."""

    base: tuple[float, float]
    swing: float = 0.0
    shape: str = "flat"
    noise: float = 0.0


#: The behaviour of each stream's numeric fields in the demo city.
PROFILES: dict[str, dict[str, FieldProfile]] = {
    "power.substation": {
        "voltage": FieldProfile(base=(10.85, 11.15), swing=0.2, shape="day", noise=0.03),
        "frequency": FieldProfile(base=(49.98, 50.02), swing=0.04, shape="day", noise=0.008),
        "load": FieldProfile(base=(8, 25), swing=6, shape="day", noise=0.15),
    },
    "water.tank": {
        "level": FieldProfile(base=(3.5, 6.5), swing=1.0, shape="night", noise=0.004),
        "inflow": FieldProfile(base=(40, 150), swing=30, shape="night", noise=1.5),
    },
    "water.pump": {
        "flow": FieldProfile(base=(60, 200), swing=40, shape="day", noise=2.0),
        "pressure": FieldProfile(base=(3, 6), swing=0.5, shape="day", noise=0.03),
    },
    "traffic.counter": {
        "vehicles": FieldProfile(base=(1.5, 4.0), swing=2.0, shape="traffic", noise=0.8),
        "mean_speed": FieldProfile(base=(28, 45), swing=-8, shape="traffic", noise=1.2),
    },
    "crowd.counter": {
        "occupancy": FieldProfile(base=(30, 45), swing=15, shape="evening", noise=0.4),
    },
    "air.quality": {
        "pm25": FieldProfile(base=(10, 30), swing=8, shape="traffic", noise=0.8),
        "pm10": FieldProfile(base=(20, 50), swing=12, shape="traffic", noise=1.2),
        "no2": FieldProfile(base=(20, 50), swing=15, shape="traffic", noise=1.5),
    },
    "traffic.anpr": {
        "speed": FieldProfile(base=(25, 40), swing=-5, shape="traffic", noise=5.0),
    },
    "presence.wifi": {
        "devices": FieldProfile(base=(8, 40), swing=12, shape="evening", noise=2.0),
        "rssi_mean": FieldProfile(base=(-82, -62), swing=3, shape="evening", noise=1.0),
    },
}

_VEHICLE_CLASSES = ("car", "van", "truck", "bus", "motorcycle", "other")
_VEHICLE_WEIGHTS = (0.68, 0.1, 0.05, 0.04, 0.12, 0.01)


def plate_pool(rng: np.random.Generator, size: int = 3000) -> list[str]:
    """Licence plates in the Aguascalientes format (``AAA-000-A``)."""
    letters = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"))
    ltr = letters[rng.integers(0, len(letters), size=(size, 4))]
    num = rng.integers(0, 1000, size=size)
    pairs = zip(ltr.tolist(), num.tolist(), strict=True)
    return [f"{a}{b}{c}-{n:03d}-{d}" for (a, b, c, d), n in pairs]


def mac_pool(rng: np.random.Generator, size: int = 6000) -> list[str]:
    """Wi-Fi MAC addresses as phones send them."""
    octets = rng.integers(0, 256, size=(size, 6))
    octets[:, 0] &= 0xFE  # unicast
    return [":".join(f"{o:02x}" for o in row) for row in octets.tolist()]


class StreamSimulator:
    """All devices of one stream; :meth:`tick` returns every device's values for one instant."""

    def __init__(
        self,
        stream: Stream,
        devices: Sequence[Device],
        rng: np.random.Generator,
        *,
        plates: Sequence[str] = (),
        macs: Sequence[str] = (),
        capacity: Mapping[str, int] | None = None,
    ) -> None:
        """``capacity``: people some crowd counters cover, by device id (others draw theirs)."""
        self.stream = stream
        self.devices = tuple(devices)
        self.rng = rng
        n = len(self.devices)
        profiles = PROFILES.get(stream.name, {})
        self._fields: list[tuple[str, FieldProfile, np.ndarray, float, float, float]] = []
        for spec in stream.numeric_fields:
            profile = profiles.get(spec.name)
            if profile is None:
                continue
            base = rng.uniform(*profile.base, size=n)
            noise = profile.noise
            if spec.max_rate is not None:
                # Two clipped draws differ by at most 2 * NOISE_CLIP sigma; keep that under 60 %.
                noise = min(noise, 0.6 * spec.max_rate / (2 * NOISE_CLIP))
            lo, hi = spec.range or (-math.inf, math.inf)
            if spec.normal is not None:
                width = spec.normal[1] - spec.normal[0]
                lo = max(lo, spec.normal[0] + BAND_MARGIN * width)
                hi = min(hi, spec.normal[1] - BAND_MARGIN * width)
            self._fields.append((spec.name, profile, base, noise, lo, hi))
        self._plates = list(plates)
        self._macs = list(macs)
        # Per-device constants that describe the site rather than the moment.
        self._capacity = rng.integers(400, 5000, size=n)
        for i, device in enumerate(self.devices):
            if capacity and device.id in capacity:
                self._capacity[i] = capacity[device.id]
        self._lanes = rng.integers(1, 4, size=n)
        self._pump_on = rng.random(n) < 0.85
        self._mac_home = rng.integers(0, max(1, len(self._macs)), size=n)
        self._door_open_until = np.zeros(n)

    def __len__(self) -> int:
        return len(self.devices)

    def _numbers(self, hour: float) -> dict[str, np.ndarray]:
        n = len(self.devices)
        out: dict[str, np.ndarray] = {}
        if not self._fields:
            return out
        z = np.clip(self.rng.standard_normal((len(self._fields), n)), -NOISE_CLIP, NOISE_CLIP)
        for k, (name, profile, base, noise, lo, hi) in enumerate(self._fields):
            level = base + profile.swing * (daily_shape(profile.shape, hour) - 0.5)
            out[name] = np.clip(level + noise * z[k], lo, hi)
        return out

    def tick(self, ts: float) -> list[dict[str, Any]]:
        """Every device's reading values at Unix time ``ts``, in device order."""
        hour = local_hour(ts)
        num = self._numbers(hour)
        n = len(self.devices)
        name = self.stream.name
        columns: dict[str, list[Any]] = {}
        for key, values in num.items():
            kind = self.stream.field(key).type
            if kind is FieldType.INTEGER:
                columns[key] = np.rint(values).astype(np.int64).tolist()
            else:
                columns[key] = np.round(values, 3).tolist()
        if name == "water.pump":
            columns["running"] = self._pump_on.tolist()
            columns["flow"] = np.where(self._pump_on, num["flow"], 0.0).round(3).tolist()
        elif name == "crowd.counter":
            people = np.rint(num["occupancy"] / 100 * self._capacity).astype(np.int64)
            columns["people"] = people.tolist()
        elif name == "access.door":
            self._doors(ts, hour)
            columns["open"] = (self._door_open_until > ts).tolist()
            columns["access_granted"] = [True] * n
        elif name == "traffic.anpr":
            self._anpr(columns)
        elif name == "presence.wifi":
            self._wifi(columns, num["devices"])
        return [{k: col[i] for k, col in columns.items()} for i in range(n)]

    def _doors(self, ts: float, hour: float) -> None:
        # Badged staff open a door now and then during office hours, for a few seconds.
        chance = 1 / 900 if 7 <= hour < 20 else 0.0
        opened = self.rng.random(len(self.devices)) < chance
        shut = self._door_open_until <= ts
        self._door_open_until = np.where(opened & shut, ts + 4.0, self._door_open_until)

    def _anpr(self, columns: dict[str, list[Any]]) -> None:
        n = len(self.devices)
        pool = len(self._plates)
        # Squaring a uniform favours low indices: commuters pass the same cameras every day.
        picks = (self.rng.random(n) ** 2 * pool).astype(np.int64)
        columns["plate"] = [self._plates[i] for i in picks.tolist()]
        lanes = 1 + (self.rng.random(n) * self._lanes).astype(np.int64)
        columns["lane"] = lanes.tolist()
        kinds = self.rng.choice(len(_VEHICLE_CLASSES), size=n, p=_VEHICLE_WEIGHTS)
        columns["vehicle_class"] = [_VEHICLE_CLASSES[k] for k in kinds.tolist()]

    def _wifi(self, columns: dict[str, list[Any]], counts: np.ndarray) -> None:
        pool = len(self._macs)
        sizes = np.rint(counts).astype(np.int64)
        # Each sensor hears phones from its own neighbourhood of the pool, so MACs repeat.
        offsets = self.rng.integers(0, 300, size=int(sizes.sum()))
        homes = np.repeat(self._mac_home, sizes)
        picks = ((homes + offsets) % pool).tolist()
        macs: list[list[str]] = []
        start = 0
        for size in sizes.tolist():
            heard = dict.fromkeys(self._macs[i] for i in picks[start : start + size])
            macs.append(list(heard))
            start += size
        columns["macs"] = macs
        columns["devices"] = [len(m) for m in macs]

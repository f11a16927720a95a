"""The catalog's zones as detectors use them: which zones a device stands in, local hours, capacity.

A device is placed in zones once, from the position the registry holds for it (a shapely
point-in-polygon test per zone), and the answer is kept for the life of the detector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from shapely import prepared
from shapely.geometry import Point

from civicguard.catalog.model import Catalog, Zone
from civicguard.catalog.zones import DEFAULT_DENSITY_LIMIT, area_m2, capacity_of, shape
from civicguard.ingest.model import Device

__all__ = ["DEFAULT_DENSITY_LIMIT", "ZoneArea", "ZoneMap", "capacity_of", "hours_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneArea:
    """A zone with what detectors need of it precomputed."""

    zone: Zone
    area_m2: float
    #: People it holds safely: declared, or area times density limit; ``None`` if restricted.
    capacity: int | None


class ZoneMap:
    """The catalog's zones, with each device's zones worked out on first sight.

    >>> from civicguard.catalog.loader import demo_catalog
    >>> zones = ZoneMap(demo_catalog(), lambda device_id: None)
    >>> zones.of("door-001"), zones.tz.key
    ((), 'America/Mexico_City')
    """

    def __init__(self, catalog: Catalog, device: Callable[[str], Device | None]) -> None:
        self._device = device
        self.tz = ZoneInfo(catalog.timezone)
        self.areas: tuple[ZoneArea, ...] = tuple(
            ZoneArea(zone=z, area_m2=(a := area_m2(z)), capacity=capacity_of(z, a))
            for z in catalog.zones
        )
        self._shapes = [prepared.prep(shape(z)) for z in catalog.zones]
        self._of: dict[str, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.areas)

    def of(self, device_id: str) -> tuple[int, ...]:
        """Indices of the zones ``device_id`` stands in; none for a device the registry lacks."""
        found = self._of.get(device_id)
        if found is None:
            device = self._device(device_id)
            if device is None:
                return ()  # not cached: the device may be registered later
            point = Point(device.lat, device.lon)
            found = tuple(i for i, s in enumerate(self._shapes) if s.covers(point))
            self._of[device_id] = found
        return found

    def local_hours(self, ts: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """The local hour (0-23) in the catalog's time zone of each Unix time in ``ts``."""
        return np.array(
            [datetime.fromtimestamp(float(t), self.tz).hour for t in ts.tolist()], dtype=np.intp
        )


def hours_text(hours: tuple[int, int]) -> str:
    """Allowed hours as an alert says them.

    >>> hours_text((7, 19)), hours_text((22, 6))
    ('07:00-19:00', '22:00-06:00')
    """
    return f"{hours[0]:02d}:00-{hours[1]:02d}:00"

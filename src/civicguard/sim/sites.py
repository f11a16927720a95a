"""Devices that belong in the catalog's zones: counters in public spaces, doors in restricted zones.

The simulated city scatters devices over street nodes; a few are then sited in zones, as a city
would install them: crowd counters inside each public space (their capacities add up to the
zone's), door controllers on each restricted zone's buildings. Sites follow from the catalog
alone, so they are the same whatever the seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from shapely.geometry import Point

from civicguard.catalog.model import Catalog, Zone, ZoneKind
from civicguard.catalog.zones import area_m2, capacity_of, shape
from civicguard.ingest.model import Device
from civicguard.sim.districts import District

#: Per stream: the kind of zone its devices are sited in, and how many per zone.
SITED: dict[str, tuple[ZoneKind, int]] = {
    "crowd.counter": (ZoneKind.PUBLIC_SPACE, 3),
    "access.door": (ZoneKind.RESTRICTED, 2),
}


def points_inside(zone: Zone, count: int) -> list[tuple[float, float]]:
    """``count`` distinct (lat, lon) points well inside ``zone``, spread over it.

    >>> ring = ((0.0, 0.0), (0.0, 0.001), (0.001, 0.001), (0.001, 0.0), (0.0, 0.0))
    >>> square = Zone(name="z", title="Z", kind=ZoneKind.RESTRICTED, polygon=ring)
    >>> [(round(a, 5), round(b, 5)) for a, b in points_inside(square, 2)]
    [(0.0005, 0.0005), (0.0003, 0.0003)]
    """
    polygon = shape(zone)
    inner = polygon.buffer(-0.1 * math.sqrt(polygon.area))
    if inner.is_empty:
        inner = polygon
    centre = inner.representative_point()
    found = [(centre.x, centre.y)]
    south, west, north, east = inner.bounds
    side = 2
    while len(found) < count and side < 64:
        for i in range(side):
            for j in range(side):
                lat = south + (north - south) * (i + 0.5) / side
                lon = west + (east - west) * (j + 0.5) / side
                if inner.contains(Point(lat, lon)) and (lat, lon) not in found:
                    found.append((lat, lon))
        side *= 2
    return found[:count]


def _district(lat: float, lon: float, districts: Sequence[District]) -> str:
    scale = math.cos(math.radians(lat))
    near = min(districts, key=lambda d: (d.lat - lat) ** 2 + ((d.lon - lon) * scale) ** 2)
    return near.name


def site_devices(
    stream: str, devices: Sequence[Device], catalog: Catalog, districts: Sequence[District]
) -> list[Device]:
    """``devices`` of ``stream`` with the first few moved into the zones they belong in."""
    out = list(devices)
    sited = SITED.get(stream)
    if sited is None:
        return out
    kind, per_zone = sited
    zones = [z for z in catalog.zones if z.kind is kind]
    spots = [(zone, point) for zone in zones for point in points_inside(zone, per_zone)]
    for k, (zone, (lat, lon)) in enumerate(spots[: len(out)]):
        device = out[k]
        title = device.label.split(",", 1)[0] if device.label else device.id
        out[k] = dataclasses.replace(
            device,
            lat=round(lat, 6),
            lon=round(lon, 6),
            district=_district(lat, lon, districts),
            label=f"{title}, {zone.title}",
        )
    return out


def counter_capacities(counters: Sequence[Device], catalog: Catalog) -> dict[str, int]:
    """People each counter standing in a public space covers: the zone's capacity, shared."""
    out: dict[str, int] = {}
    for zone in catalog.zones:
        capacity = capacity_of(zone, area_m2(zone))
        if capacity is None:
            continue
        polygon = shape(zone)
        inside = [c.id for c in counters if polygon.covers(Point(c.lat, c.lon))]
        for device_id in inside:
            out[device_id] = max(1, capacity // len(inside))
    return out

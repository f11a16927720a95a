"""Zone geometry: checking a catalog polygon, its area and capacity, the city's time zone.

A zone's polygon is a closed ring of (latitude, longitude) points. Shapely works on it as
(x, y) = (latitude, longitude) for containment, which needs no projection; areas are taken
on a local flat projection in metres, exact enough for the few hundred metres a zone spans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shapely.geometry import Polygon
from shapely.validation import explain_validity

from civicguard.catalog.model import Zone, ZoneKind
from civicguard.geo import EARTH_RADIUS_M

#: A closed ring of a triangle: three corners and the first one again.
MIN_POINTS = 4

#: People per square metre a public space must not exceed when the catalog gives no capacity.
#: Fruin's levels of service for standing and queuing areas put 0.2-0.3 m2 per person
#: (3.3-5 people/m2) at level E, people standing in touch with one another, and under 0.2 m2
#: at level F, where pressure builds and crowds crush (J. J. Fruin, Pedestrian Planning and
#: Design, 1971). 4 people/m2 sits inside level E, before F begins; crowd-safety practice
#: (G. K. Still, Introduction to Crowd Science, 2014) treats densities past it as dangerous.
DEFAULT_DENSITY_LIMIT = 4.0


def check_polygon(points: Sequence[tuple[float, float]]) -> None:
    """Raise ``ValueError`` saying what is wrong with a polygon of (lat, lon) points.

    >>> check_polygon([(21.87, -102.27), (21.87, -102.26), (21.88, -102.26), (21.87, -102.27)])
    >>> check_polygon([(21.87, -102.27), (21.87, -102.26), (21.88, -102.26)])
    Traceback (most recent call last):
    ...
    ValueError: polygon needs at least 4 points (a closed ring of 3 corners), got 3
    """
    if len(points) < MIN_POINTS:
        raise ValueError(
            f"polygon needs at least {MIN_POINTS} points (a closed ring of 3 corners), "
            f"got {len(points)}"
        )
    for i, (lat, lon) in enumerate(points):
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"point {i} [{lat}, {lon}] is not a [latitude, longitude] pair")
    if tuple(points[0]) != tuple(points[-1]):
        raise ValueError(
            f"polygon is not closed: the last point {list(points[-1])} must repeat "
            f"the first {list(points[0])}"
        )
    ring = Polygon(points)
    if not ring.is_valid:
        raise ValueError(f"polygon is not valid: {explain_validity(ring)}")
    if ring.area <= 0:
        raise ValueError("polygon encloses no area")


def check_timezone(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a time zone of the IANA database.

    >>> check_timezone("America/Mexico_City")
    >>> check_timezone("Mars/Olympus")
    Traceback (most recent call last):
    ...
    ValueError: unknown time zone 'Mars/Olympus' (expected an IANA name such as 'Europe/Madrid')
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name such as 'Europe/Madrid')"
        ) from exc


def shape(zone: Zone) -> Polygon:
    """The zone as a shapely polygon in (latitude, longitude) coordinates."""
    return Polygon(zone.polygon)


def area_m2(zone: Zone) -> float:
    """The zone's area in square metres (local flat projection around its first point).

    >>> side = math.degrees(100 / EARTH_RADIUS_M)  # 100 m of latitude
    >>> square = Zone(name="z", title="Z", kind=ZoneKind.PUBLIC_SPACE, polygon=(
    ...     (0.0, 0.0), (0.0, side), (side, side), (side, 0.0), (0.0, 0.0)))
    >>> round(area_m2(square))
    10000
    """
    lat0, lon0 = zone.polygon[0]
    scale = math.radians(1.0) * EARTH_RADIUS_M
    cos0 = math.cos(math.radians(lat0))
    flat = [((lon - lon0) * scale * cos0, (lat - lat0) * scale) for lat, lon in zone.polygon]
    return float(Polygon(flat).area)


def capacity_of(zone: Zone, area: float) -> int | None:
    """A public space's capacity: as declared, else its area times its density limit.

    >>> plaza = Zone(name="p", title="P", kind=ZoneKind.PUBLIC_SPACE, polygon=())
    >>> capacity_of(plaza, 1000.0), capacity_of(plaza, 0.0)
    (4000, None)
    """
    if zone.kind is not ZoneKind.PUBLIC_SPACE:
        return None
    if zone.capacity is not None:
        return zone.capacity
    people = math.floor(area * (zone.density_limit or DEFAULT_DENSITY_LIMIT))
    return people if people > 0 else None

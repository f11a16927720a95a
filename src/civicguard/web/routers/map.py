"""The city map's data: device sites by stream, and the street network as GeoJSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from civicguard.web.deps import API_PREFIX, PlatformDep

router = APIRouter(prefix=f"{API_PREFIX}/map", tags=["map"])


@router.get("")
def city_map(platform: PlatformDep) -> dict[str, Any]:
    """Devices (lat, lon, stream, district), the streams' titles and categories, and the streets."""
    streets: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if platform.streets is not None:
        streets = platform.streets.geojson()
    devices = [
        {
            "id": d.id,
            "stream": d.stream,
            "lat": d.lat,
            "lon": d.lon,
            "district": d.district,
            "label": d.label,
            "revoked": d.revoked,
        }
        for d in platform.registry.all()
    ]
    streams = {
        s.name: {"title": s.title, "category": s.category.value} for s in platform.catalog.streams
    }
    city = platform.catalog.city
    return {"city": city, "devices": devices, "streams": streams, "streets": streets}

"""The city's street network, read from OpenStreetMap XML, for the map, dispatch and evacuation.

Only ways that people or vehicles travel on become edges; each edge carries its length in
metres, its highway class, its name and whether it is one-way. When no extract is at hand a
synthetic grid stands in so that the demo still has streets to place devices on.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from civicguard.geo import EARTH_RADIUS_M, haversine_m
from civicguard.settings import Settings

#: Highway classes people or vehicles travel on; the rest (bus stops, proposals...) are not streets.
TRAVEL_CLASSES = frozenset(
    {
        "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
        "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link",
        "living_street", "service", "road", "pedestrian", "footway", "path", "steps",
        "cycleway", "track", "busway",
    }
)  # fmt: skip

_DEMO_EXTRACT = "aguascalientes-centro.osm"
#: Middle of the demo extract's box (central Aguascalientes), for the synthetic stand-in grid.
_DEMO_CENTRE = (21.8689, -102.2717)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """The box the network fits in, in degrees."""

    south: float
    west: float
    north: float
    east: float

    @property
    def centre(self) -> tuple[float, float]:
        """(lat, lon) of the box's middle."""
        return ((self.south + self.north) / 2, (self.west + self.east) / 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class Street:
    """One OSM way kept as a street: the node ids it runs through, its class and name."""

    id: str
    nodes: tuple[int, ...]
    highway: str
    name: str
    oneway: bool


class StreetNetwork:
    """A directed street graph (``networkx.MultiDiGraph``) with nodes carrying ``lat``/``lon``."""

    def __init__(self, graph: nx.MultiDiGraph, streets: tuple[Street, ...], source: str) -> None:
        self.graph = graph
        self.streets = streets
        self.source = source
        ids = list(graph.nodes)
        self._ids = np.array(ids, dtype=np.int64)
        self._lat = np.array([graph.nodes[n]["lat"] for n in ids], dtype=np.float64)
        self._lon = np.array([graph.nodes[n]["lon"] for n in ids], dtype=np.float64)
        if not ids:
            raise ValueError(f"{source}: no streets found")
        self.bounds = Bounds(
            south=float(self._lat.min()),
            west=float(self._lon.min()),
            north=float(self._lat.max()),
            east=float(self._lon.max()),
        )

    def __repr__(self) -> str:
        return (
            f"StreetNetwork({self.source!r}, {self.graph.number_of_nodes()} nodes, "
            f"{self.graph.number_of_edges()} edges)"
        )

    def node_coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Node ids, latitudes and longitudes as arrays (same order)."""
        return self._ids.copy(), self._lat.copy(), self._lon.copy()

    def nearest_node(self, lat: float, lon: float) -> int:
        """The id of the street node closest to (``lat``, ``lon``)."""
        # An equirectangular projection is exact enough at city scale and vectorises.
        dy = self._lat - lat
        dx = (self._lon - lon) * math.cos(math.radians(lat))
        return int(self._ids[int(np.argmin(dx * dx + dy * dy))])

    def length_m(self) -> float:
        """Total length of all streets, counting two-way streets once."""
        total = 0.0
        for street in self.streets:
            for a, b in zip(street.nodes, street.nodes[1:], strict=False):
                na, nb = self.graph.nodes[a], self.graph.nodes[b]
                total += haversine_m(na["lat"], na["lon"], nb["lat"], nb["lon"])
        return total

    def geojson(self) -> dict[str, Any]:
        """The streets as a GeoJSON FeatureCollection of LineStrings (lon, lat; 6 decimals)."""
        nodes = self.graph.nodes
        features = []
        for street in self.streets:
            coords = [[round(nodes[n]["lon"], 6), round(nodes[n]["lat"], 6)] for n in street.nodes]
            features.append(
                {
                    "type": "Feature",
                    "id": street.id,
                    "geometry": {"type": "LineString", "coordinates": coords},
                    "properties": {
                        "highway": street.highway,
                        "name": street.name,
                        "oneway": street.oneway,
                    },
                }
            )
        return {"type": "FeatureCollection", "features": features}


def _oneway(tags: dict[str, str]) -> tuple[bool, bool]:
    """(one-way?, drawn against the direction of travel?) from a way's tags."""
    value = tags.get("oneway", "").lower()
    if value == "-1":
        return True, True
    if value in {"yes", "true", "1"}:
        return True, False
    if value == "no":
        return False, False
    implied = tags.get("junction") in {"roundabout", "circular"} or tags.get("highway") in {
        "motorway",
        "motorway_link",
    }
    return implied, False


def _build(
    coords: dict[int, tuple[float, float]], streets: list[Street], source: str
) -> StreetNetwork:
    graph = nx.MultiDiGraph()
    for street in streets:
        for node in street.nodes:
            lat, lon = coords[node]
            graph.add_node(node, lat=lat, lon=lon)
        for a, b in zip(street.nodes, street.nodes[1:], strict=False):
            (la, oa), (lb, ob) = coords[a], coords[b]
            attrs = {
                "length": haversine_m(la, oa, lb, ob),
                "highway": street.highway,
                "name": street.name,
                "oneway": street.oneway,
                "way": street.id,
            }
            graph.add_edge(a, b, **attrs)
            if not street.oneway:
                graph.add_edge(b, a, **attrs)
    return StreetNetwork(graph, tuple(streets), source)


def load_streets(osm_path: str | Path) -> StreetNetwork:
    """Read an OSM XML extract into a street network (ways tagged with a travel ``highway``)."""
    path = Path(osm_path)
    coords: dict[int, tuple[float, float]] = {}
    streets: list[Street] = []
    for _, elem in ET.iterparse(path, events=("end",)):  # noqa: S314 -- see the import
        if elem.tag == "node":
            coords[int(elem.attrib["id"])] = (float(elem.attrib["lat"]), float(elem.attrib["lon"]))
            elem.clear()
        elif elem.tag == "way":
            tags = {t.attrib["k"]: t.attrib["v"] for t in elem.iter("tag")}
            highway = tags.get("highway", "")
            if highway in TRAVEL_CLASSES and tags.get("access") not in {"no", "private"}:
                refs = [int(nd.attrib["ref"]) for nd in elem.iter("nd")]
                # Extracts cut at the box edge reference nodes they do not contain.
                refs = [r for r in refs if r in coords]
                oneway, reverse = _oneway(tags)
                if reverse:
                    refs.reverse()
                if len(refs) >= 2:
                    streets.append(
                        Street(
                            id=f"way/{elem.attrib['id']}",
                            nodes=tuple(refs),
                            highway=highway,
                            name=tags.get("name", ""),
                            oneway=oneway,
                        )
                    )
            elem.clear()
    return _build(coords, streets, str(path))


def synthetic_grid(
    *,
    centre: tuple[float, float] = _DEMO_CENTRE,
    rows: int = 14,
    cols: int = 14,
    spacing_m: float = 110.0,
) -> StreetNetwork:
    """A regular two-way street grid around ``centre``; stands in when no OSM extract exists."""
    lat0, lon0 = centre
    dlat = math.degrees(spacing_m / EARTH_RADIUS_M)
    dlon = dlat / math.cos(math.radians(lat0))
    coords: dict[int, tuple[float, float]] = {}
    for r in range(rows):
        for c in range(cols):
            coords[r * cols + c + 1] = (
                lat0 + (r - (rows - 1) / 2) * dlat,
                lon0 + (c - (cols - 1) / 2) * dlon,
            )
    streets: list[Street] = []
    for r in range(rows):
        nodes = tuple(r * cols + c + 1 for c in range(cols))
        kind = "primary" if r == rows // 2 else "residential"
        streets.append(Street(id=f"row/{r}", nodes=nodes, highway=kind, name=f"Calle {r + 1}",
                              oneway=False))  # fmt: skip
    for c in range(cols):
        nodes = tuple(r * cols + c + 1 for r in range(rows))
        kind = "secondary" if c == cols // 2 else "residential"
        streets.append(Street(id=f"col/{c}", nodes=nodes, highway=kind, name=f"Avenida {c + 1}",
                              oneway=False))  # fmt: skip
    return _build(coords, streets, "synthetic-grid")


def demo_extract_path(settings: Settings | None = None) -> Path | None:
    """Where the city's OSM extract is: ``settings.streets_osm``, else the shared demo extract."""
    if settings is not None and settings.streets_osm:
        return Path(settings.streets_osm)
    # src/civicguard/respond/streets.py -> project root is three levels above the package.
    root = Path(__file__).resolve().parents[3]
    candidate = root.parent / "shared" / "data" / "city" / _DEMO_EXTRACT
    return candidate if candidate.is_file() else None


def city_streets(settings: Settings | None = None) -> StreetNetwork:
    """The street network the platform runs on: the configured extract or a synthetic grid."""
    path = demo_extract_path(settings)
    if path is None:
        return synthetic_grid()
    # A configured extract that is missing is an operator error, so it raises here.
    return load_streets(path)

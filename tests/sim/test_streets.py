"""The street network read from the shared OSM extracts, and the synthetic stand-in grid."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from civicguard.geo import haversine_m
from civicguard.respond.streets import (
    TRAVEL_CLASSES,
    StreetNetwork,
    city_streets,
    load_streets,
    synthetic_grid,
)
from civicguard.settings import Settings
from tests.conftest import SHARED_DATA
from tests.services import missing_data

CITY = SHARED_DATA / "city"
EXTRACTS = ["aguascalientes-centro.osm", "west-oakland.osm"]


@pytest.fixture(scope="module", params=EXTRACTS)
def network(request: pytest.FixtureRequest) -> StreetNetwork:
    path = CITY / request.param
    if not path.is_file():
        missing_data(f"{path} is not in the shared data (see shared/data/README.md)")
    return load_streets(path)


def test_edges_are_travel_ways_with_lengths(network: StreetNetwork) -> None:
    g = network.graph
    assert g.number_of_nodes() > 100
    assert g.number_of_edges() > g.number_of_nodes() / 2
    for a, b, data in g.edges(data=True):
        assert data["highway"] in TRAVEL_CLASSES
        # Consecutive OSM nodes are close; the length is the great-circle distance between them.
        na, nb = g.nodes[a], g.nodes[b]
        expected = haversine_m(na["lat"], na["lon"], nb["lat"], nb["lon"])
        assert data["length"] == pytest.approx(expected)
        assert 0 <= data["length"] < 2000


def test_two_way_streets_run_both_ways_one_way_streets_do_not(network: StreetNetwork) -> None:
    g = network.graph
    two_way = [(a, b) for a, b, d in g.edges(data=True) if not d["oneway"]]
    one_way = [(a, b) for a, b, d in g.edges(data=True) if d["oneway"]]
    assert two_way
    assert all(g.has_edge(b, a) for a, b in two_way)
    if one_way:
        assert any(not g.has_edge(b, a) for a, b in one_way)


def test_network_is_mostly_connected(network: StreetNetwork) -> None:
    biggest = max(nx.weakly_connected_components(network.graph), key=len)
    assert len(biggest) > 0.8 * network.graph.number_of_nodes()


def test_geojson_linestrings(network: StreetNetwork) -> None:
    doc = network.geojson()
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == len(network.streets)
    b = network.bounds
    for feature in doc["features"]:
        assert feature["geometry"]["type"] == "LineString"
        assert feature["properties"]["highway"] in TRAVEL_CLASSES
        assert "name" in feature["properties"]
        for lon, lat in feature["geometry"]["coordinates"]:
            assert round(lon, 6) == lon and round(lat, 6) == lat
            assert b.south - 1e-6 <= lat <= b.north + 1e-6
            assert b.west - 1e-6 <= lon <= b.east + 1e-6


def test_named_streets_survive() -> None:
    net = load_streets(CITY / "aguascalientes-centro.osm")
    names = {s.name for s in net.streets}
    assert "Avenida Paseo de la Cruz" in names


def test_nearest_node_is_the_closest(network: StreetNetwork) -> None:
    g = network.graph

    def dist(lat: float, lon: float, node: int) -> float:
        return haversine_m(lat, lon, g.nodes[node]["lat"], g.nodes[node]["lon"])

    for node in list(g.nodes)[::37]:
        lat, lon = g.nodes[node]["lat"], g.nodes[node]["lon"]
        assert dist(lat, lon, network.nearest_node(lat, lon)) < 0.01
    # A point off the map snaps to the node closest of all, as brute force finds it.
    lat, lon = network.bounds.north + 0.01, network.bounds.centre[1]
    best = min(dist(lat, lon, n) for n in g.nodes)
    assert dist(lat, lon, network.nearest_node(lat, lon)) == pytest.approx(best, rel=1e-3)


def test_synthetic_grid_is_a_connected_grid() -> None:
    grid = synthetic_grid(rows=5, cols=4, spacing_m=100)
    g = grid.graph
    assert g.number_of_nodes() == 20
    # (rows*(cols-1) + cols*(rows-1)) two-way segments
    assert g.number_of_edges() == 2 * (5 * 3 + 4 * 4)
    assert nx.is_strongly_connected(g)
    lengths = [d["length"] for _, _, d in g.edges(data=True)]
    assert min(lengths) == pytest.approx(100, rel=0.01)
    assert max(lengths) == pytest.approx(100, rel=0.01)


def test_city_streets_uses_the_configured_extract_or_raises() -> None:
    oakland = city_streets(Settings(streets_osm=str(CITY / "west-oakland.osm")))
    assert "west-oakland" in oakland.source
    with pytest.raises(FileNotFoundError):
        city_streets(Settings(streets_osm="/nonexistent/city.osm"))


def test_empty_extract_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.osm"
    path.write_text('<?xml version="1.0"?><osm version="0.6"><node id="1" lat="1" lon="2"/></osm>')
    with pytest.raises(ValueError, match="no streets"):
        load_streets(path)

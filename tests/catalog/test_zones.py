"""Zones in the catalog: polygons, hours, capacities and the time zone, checked at load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from civicguard.catalog.loader import CatalogError, demo_catalog, load_catalog
from civicguard.catalog.model import ZoneKind
from civicguard.catalog.zones import area_m2, capacity_of

from .test_loader import _doc, _write

Doc = dict[str, Any]


def test_the_demo_declares_its_zones_and_time_zone() -> None:
    catalog = demo_catalog()
    assert catalog.timezone == "America/Mexico_City"
    kinds = {z.name: z.kind for z in catalog.zones}
    assert kinds == {
        "plaza.central": ZoneKind.PUBLIC_SPACE,
        "market.square": ZoneKind.PUBLIC_SPACE,
        "water.works": ZoneKind.RESTRICTED,
        "data.centre": ZoneKind.RESTRICTED,
    }
    market = next(z for z in catalog.zones if z.name == "market.square")
    # About 50 m x 60 m at 4 people/m2.
    assert 2900 < area_m2(market) < 3100
    assert capacity_of(market, area_m2(market)) == int(area_m2(market) * 4)
    assert catalog.stream("access.door").held_open_after_s == 30.0


def _zone(doc: Doc, name: str = "data.centre") -> Doc:
    zone: Doc = doc["zones"][name]
    return zone


def _open_ring(doc: Doc) -> None:
    _zone(doc)["polygon"] = _zone(doc)["polygon"][:-1]


def _bow_tie(doc: Doc) -> None:
    ring = _zone(doc)["polygon"]
    ring[1], ring[2] = ring[2], ring[1]


MUTATIONS: list[tuple[Callable[[Doc], None], str, str]] = [
    (_open_ring, "zones.data.centre.polygon", "not closed"),
    (_bow_tie, "zones.data.centre.polygon", "Self-intersection"),
    (lambda d: _zone(d).update(polygon=[[21.8, -102.2]] * 3), "zones.data.centre.polygon",
     "at least 4 points"),
    (lambda d: _zone(d).update(polygon=[[102.2, 21.8]] * 4), "zones.data.centre.polygon",
     "not a [latitude, longitude] pair"),
    (lambda d: _zone(d).pop("allowed_hours"), "zones.data.centre", "needs allowed_hours"),
    (lambda d: _zone(d).update(allowed_hours=[6, 25]), "zones.data.centre.allowed_hours",
     "0-24"),
    (lambda d: _zone(d).update(capacity=100), "zones.data.centre", "only to public_space"),
    (lambda d: _zone(d, "plaza.central").update(capacity=0), "zones.plaza.central.capacity",
     "greater than 0"),
    (lambda d: _zone(d).update(kind="secret"), "zones.data.centre.kind", "restricted"),
    (lambda d: d.update(timezone="Mexico/Aguascalientes_Centro"), "timezone",
     "unknown time zone"),
    (lambda d: d["streams"]["water.pump"].update(held_open_after="30s"), "streams.water.pump",
     "boolean field called 'open'"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "path", "words"), MUTATIONS)
def test_bad_zones_are_refused_naming_the_path(
    tmp_path: Path, mutate: Callable[[Doc], None], path: str, words: str
) -> None:
    doc = _doc()
    mutate(doc)
    file = _write(tmp_path, doc)
    with pytest.raises(CatalogError) as info:
        load_catalog(file)
    assert str(file) in str(info.value)
    assert any(p == path and words in m for p, m in info.value.problems), info.value.problems


def test_a_catalog_without_zones_or_time_zone_runs_on_utc(tmp_path: Path) -> None:
    doc = _doc()
    del doc["zones"], doc["timezone"]
    catalog = load_catalog(_write(tmp_path, doc))
    assert catalog.zones == () and catalog.timezone == "UTC"
    assert yaml.safe_dump(doc)  # the document itself stays plain YAML

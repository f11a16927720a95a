"""The catalog loads, and every invalid catalog is refused with file, path and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from civicguard.catalog.loader import CatalogError, demo_catalog, load_catalog, parse_duration
from civicguard.catalog.model import Category, Treatment

DEMO = Path(__file__).resolve().parents[2] / "src/civicguard/catalog/demo_city.yaml"


def _doc() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_demo_catalog_declares_the_demo_streams() -> None:
    catalog = demo_catalog()
    names = {s.name for s in catalog.streams}
    assert {"power.substation", "traffic.anpr", "presence.wifi", "access.door"} <= names
    anpr = catalog.stream("traffic.anpr")
    assert anpr.category is Category.PERSONAL
    assert anpr.field("plate").treatment is Treatment.PSEUDONYMISE
    assert anpr.retention_days == 30
    assert catalog.stream("power.substation").field("frequency").normal == (49.6, 50.4)


def test_every_identifier_field_of_the_demo_is_protected() -> None:
    for stream in demo_catalog().streams:
        for spec in stream.fields:
            if spec.identifier:
                assert spec.treatment is not Treatment.KEEP, (stream.name, spec.name)


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (
            lambda d: d["streams"]["power.substation"]["fields"]["voltage"].update(range=[40, 0]),
            "streams.power.substation.fields.voltage",
            "low <= high",
        ),
        (
            lambda d: d["streams"]["presence.wifi"].update(retention="7 weeks"),
            "streams.presence.wifi.retention",
            "duration",
        ),
        (
            lambda d: d["streams"]["traffic.anpr"]["fields"]["plate"].update(treatment="keep"),
            "streams.traffic.anpr.fields.plate",
            "personal identifier",
        ),
        (
            lambda d: d["streams"]["water.tank"].update(purposes=["world_domination"]),
            "streams.water.tank.purposes.0",
            "not declared",
        ),
        (
            lambda d: d["streams"]["traffic.anpr"].update(legal_basis="not_applicable"),
            "streams.traffic.anpr",
            "legal basis",
        ),
        (
            lambda d: d["streams"]["water.pump"].update(colour="blue"),
            "streams.water.pump.colour",
            "Extra inputs",
        ),
        (
            lambda d: d["streams"]["access.door"]["rules"]["door_forced"]["when"].update(handle=1),
            "streams.access.door",
            "unknown field 'handle'",
        ),
    ],
)
def test_invalid_catalog_names_file_path_and_problem(tmp_path: Path, mutate, path, words) -> None:
    doc = _doc()
    mutate(doc)
    file = _write(tmp_path, doc)
    with pytest.raises(CatalogError) as info:
        load_catalog(file)
    message = str(info.value)
    assert str(file) in message
    assert any(p == path and words in m for p, m in info.value.problems), info.value.problems


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("catalog_version: '1'\nstreams: [unclosed\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(file)
    assert "line" in info.value.problems[0][0]


def test_unsupported_version_is_refused(tmp_path: Path) -> None:
    doc = _doc()
    doc["catalog_version"] = "99"
    with pytest.raises(CatalogError, match="not supported"):
        load_catalog(_write(tmp_path, doc))


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_durations_parse_to_seconds(amount: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * factor)


def test_only_the_scada_historian_opts_out_of_learned_baselines() -> None:
    catalog = demo_catalog()
    opted_out = [s.name for s in catalog.streams if not s.baseline_anomalies]
    assert opted_out == ["water.scada"]

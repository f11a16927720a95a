"""The catalog's ``retention`` section: durations of records no stream describes."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from civicguard.catalog.loader import CatalogError, parse_catalog
from civicguard.catalog.model import RecordRetention

DAY = 86_400.0


def _doc() -> dict:
    text = resources.files("civicguard.catalog").joinpath("demo_city.yaml").read_text("utf-8")
    doc: dict = yaml.safe_load(text)
    return doc


def test_the_demo_declares_each_record_retention() -> None:
    doc = _doc()
    catalog = parse_catalog(yaml.safe_dump(doc))
    declared = doc["retention"]
    assert set(declared) == {"consent_proof", "subject_requests", "citizen_reports", "alert_marks"}
    assert catalog.retention.consent_proof_s == float(declared["consent_proof"][:-1]) * DAY
    assert catalog.retention.citizen_reports_s == float(declared["citizen_reports"][:-1]) * DAY
    assert catalog.retention.alert_marks_s == float(declared["alert_marks"][:-1]) * DAY


def test_a_catalog_without_the_section_gets_the_defaults() -> None:
    doc = _doc()
    del doc["retention"]
    assert parse_catalog(yaml.safe_dump(doc)).retention == RecordRetention()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("citizen_reports", "a year", "expected a duration"),
        ("alert_marks", "0d", "greater than 0"),
        ("receipts", "30d", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_retention_names_its_path(key: str, value: str, words: str) -> None:
    doc = _doc()
    doc["retention"][key] = value
    with pytest.raises(CatalogError) as caught:
        parse_catalog(yaml.safe_dump(doc), source="city.yaml")
    assert f"city.yaml: retention.{key}: " in str(caught.value)
    assert words in str(caught.value)

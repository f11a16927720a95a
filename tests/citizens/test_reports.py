"""Citizen reports: scrubbed before they are stored, placed on an H3 cell, sealed if identified."""

from __future__ import annotations

import h3
import pytest

from civicguard.citizens import ReportError
from civicguard.citizens.reports import REPORT_RESOLUTION
from civicguard.platform import Platform

from .conftest import database_bytes

EMAIL, PHONE = "lucia.romero@correo.example.mx", "+52 449 915 2231"
TEXT = f"Broken street light on the corner, write to {EMAIL} or call {PHONE} if needed"


def test_the_text_is_scrubbed_before_it_reaches_the_database(platform: Platform) -> None:
    filed = platform.citizens.reports.file(TEXT, "street_light", lat=21.8818, lon=-102.2960)
    assert EMAIL not in filed["text"] and PHONE not in filed["text"]
    assert "<EMAIL_ADDRESS>" in filed["text"] and "<PHONE_NUMBER>" in filed["text"]
    assert filed["text"].startswith("Broken street light on the corner")
    assert h3.get_resolution(filed["cell"]) == REPORT_RESOLUTION
    assert filed["cell"] == h3.latlng_to_cell(21.8818, -102.2960, REPORT_RESOLUTION)
    assert platform.citizens.reports.list() == [filed]
    raw = database_bytes(platform)
    for secret in (EMAIL, PHONE, "lucia.romero", "915 2231"):
        assert secret.encode() not in raw, secret
    assert b"Broken street light on the corner" in raw  # the scrubbed text is what is kept


def test_an_identified_citizens_report_is_sealed_under_their_key(platform: Platform) -> None:
    filed = platform.citizens.reports.file(
        "Pothole in front of the market", "damage", citizen="lucia-1201"
    )
    assert filed["identified"] is True and filed["cell"] is None
    assert platform.citizens.reports.list()[0]["text"] == "Pothole in front of the market"
    raw = database_bytes(platform)
    assert b"Pothole" not in raw and b"lucia-1201" not in raw


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"text": "  "}, "text: empty"),
        ({"text": "x" * 2001}, "text: longer than 2000"),
        ({"category": "Street Light!"}, "category: "),
        ({"lat": 21.0}, "lat and lon: give both or neither"),
        ({"lat": 91.0, "lon": 0.0}, "lat: 91.0 is not a latitude"),
        ({"lat": 0.0, "lon": float("nan")}, "lon: nan is not a longitude"),
    ],
)
def test_a_bad_report_says_which_field_is_wrong(
    platform: Platform, kwargs: dict[str, object], problem: str
) -> None:
    args: dict[str, object] = {"text": "Graffiti on the wall", "category": "other"} | kwargs
    with pytest.raises(ReportError, match=problem):
        platform.citizens.reports.file(**args)  # type: ignore[arg-type]
    assert platform.citizens.reports.list() == []

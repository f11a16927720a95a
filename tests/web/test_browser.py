"""The command centre in a real browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from civicguard.platform import Platform
from civicguard.web.server import WebServer
from tests.browser import CHROMIUM, LAUNCH_ARGS, playwright

from .conftest import PASSWORD, add_staff, bearer, provision

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CENTRE = (21.8818, -102.2916)


class GridStreets:
    """A small street grid around the centre, standing in for the OSM extract."""

    def geojson(self) -> dict[str, Any]:
        lat0, lon0 = CENTRE
        features = []
        for i in range(-6, 7):
            major = i % 3 == 0
            cls = "primary" if major else "residential"
            for line in (
                [[lon0 - 0.012, lat0 + i * 0.002], [lon0 + 0.012, lat0 + i * 0.002]],
                [[lon0 + i * 0.002, lat0 - 0.012], [lon0 + i * 0.002, lat0 + 0.012]],
            ):
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "LineString", "coordinates": line},
                        "properties": {"highway": cls, "name": ""},
                    }
                )
        return {"type": "FeatureCollection", "features": features}


def test_operator_sees_a_forced_door_live_and_acknowledges_it(platform: Platform) -> None:
    api = playwright()
    expect, sync_playwright = api.expect, api.sync_playwright

    add_staff(platform)
    platform.streets = GridStreets()
    streams = ["power.substation", "water.tank", "traffic.counter", "crowd.counter", "air.quality"]
    for i in range(40):
        lat = CENTRE[0] + ((i * 7) % 11 - 5) * 0.0019
        lon = CENTRE[1] + ((i * 5) % 13 - 6) * 0.0017
        provision(platform, f"dev-{i}", streams[i % len(streams)], lat=lat, lon=lon)
    secret = provision(platform, "door-ayuntamiento", "access.door", lat=21.8805, lon=-102.2950)
    platform.start_processing()
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(web.url + "/")
            expect(page.locator("#login")).to_be_visible()
            page.fill("#username", "operator")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            expect(page.locator("#live")).to_have_class("live on", timeout=10_000)
            expect(page.locator("#devices circle")).to_have_count(41)
            assert page.locator("#streets path").count() == 26

            # The door is forced: a real reading through the real ingest endpoint.
            reading = {
                "seq": 1,
                "ts": platform.clock.now(),
                "values": {"open": True, "access_granted": False},
            }
            response = httpx.post(
                f"{web.url}/api/v1/ingest", headers=bearer(secret), content=json.dumps(reading)
            )
            assert response.status_code == 202
            # The catalog's door_forced rule raises the alert; the page must show it live.
            alert_item = page.locator("#alerts li.sev-high").first
            expect(alert_item).to_contain_text("Door forced open", timeout=10_000)
            expect(page.locator("#markers g.marker.sev-high")).to_have_count(1)
            incident = page.locator("#incidents li.open").first
            expect(incident).to_contain_text("Door forced open")
            # The alert explains itself, and the operator marks it a real problem.
            expect(alert_item.locator(".explanation")).to_contain_text("detector rules")
            alert_item.locator("button.mark[data-verdict='true']").click()
            expect(alert_item.locator(".mark-status")).to_have_text("marked real")
            [mark] = platform.store.marks.query()
            assert (mark.verdict.value, mark.marked_by) == ("true", "operator")
            assert mark.detector == "rules"
            page.screenshot(path=str(ARTIFACTS / "command-centre.png"))

            incident.locator("button.ack").click()
            expect(page.locator("#incidents li.acknowledged")).to_contain_text("taken by operator")
            [stored] = platform.store.incidents.query()
            assert (stored.status.value, stored.acknowledged_by) == ("acknowledged", "operator")
            browser.close()
    finally:
        web.stop()


def test_a_locked_out_operator_is_told_to_wait_not_that_the_password_is_wrong(
    platform: Platform,
) -> None:
    api = playwright()
    expect, sync_playwright = api.expect, api.sync_playwright
    add_staff(platform)
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = browser.new_page()
            page.goto(web.url + "/")
            error = page.locator("#login-error")
            for attempt in range(6):
                page.fill("#username", "operator")
                page.fill("#password", f"guess-{attempt}")
                page.click("#login-submit")
                if attempt < 5:
                    expect(error).to_have_text("Unknown user or wrong password.")
                    page.evaluate("document.getElementById('login-error').textContent = ''")
            # The sixth guess is refused unchecked; the page says for how long.
            expect(error).to_have_text("Too many failed sign-ins: try again in 15 minutes.")
            # Even the right password now waits.
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            expect(error).to_contain_text("Too many failed sign-ins")
            browser.close()
    finally:
        web.stop()

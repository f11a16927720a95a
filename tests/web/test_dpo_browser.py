"""The DPO page in a real browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

from typing import Any

import pytest

from civicguard.platform import Platform
from civicguard.web.server import WebServer
from tests.browser import CHROMIUM, LAUNCH_ARGS, playwright

from .conftest import PASSWORD
from .test_browser import ARTIFACTS
from .test_dpo import CONSENTING, PLATES, REQUESTER, STRANGER, traffic

pytestmark = pytest.mark.browser

__all__ = ["traffic"]  # the fixture, shared with the API tests


def test_the_dpo_signs_in_and_reads_the_overview(
    platform: Platform, server: WebServer, traffic: dict[str, Any]
) -> None:
    api = playwright()
    expect, sync_playwright = api.expect, api.sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})

        def sign_in(username: str) -> None:
            expect(page.locator("#login")).to_be_visible()
            page.fill("#username", username)
            page.fill("#password", PASSWORD)
            page.click("#login-submit")

        page.goto(server.url + "/dpo")
        # An operator signs in but may not read the overview: the page says so.
        sign_in("operator")
        expect(page.locator("#denied")).to_contain_text("may not read the privacy overview")
        expect(page.locator("[data-stream]")).to_have_count(0)
        page.click("#logout")

        sign_in("dpo")
        expect(page.locator("#who")).to_have_text("dpo (dpo)")
        streams = len(platform.catalog.streams) + 1  # and the refusals of no stream
        expect(page.locator("#streams [data-stream]")).to_have_count(streams, timeout=10_000)

        def figure(stream: str, name: str, kind: str) -> Any:
            return page.locator(
                f'[data-stream="{stream}"] tr[data-figure="{name}"] td[data-kind="{kind}"]'
            )

        expect(figure("traffic.anpr", "pseudonymised", "process")).to_have_text(str(len(PLATES)))
        expect(figure("traffic.anpr", "readings", "stored")).to_have_text(str(len(PLATES)))
        expect(figure("power.substation", "readings", "process")).to_have_text(
            str(traffic["power"])
        )
        expect(figure("power.substation", "refused", "stored")).to_have_text("1")
        expect(figure("citizen.safety_app", "consent_refused", "process")).to_have_text("1")
        expect(figure("citizen.safety_app", "dl-no_consent", "stored")).to_have_text("1")
        plate = page.locator('[data-stream="traffic.anpr"] tr[data-field="plate"] .treatment')
        expect(plate).to_have_text("pseudonymise")
        expect(page.locator("#pending-count")).to_have_text("1")
        expect(page.locator(f'[data-request="{traffic["request"]["id"]}"]')).to_contain_text(
            "erasure"
        )
        expect(page.locator('#retention tr[data-target="consent_receipts"]')).to_have_count(1)
        expect(page.locator("#last-run")).to_contain_text("Last sweep")
        expect(page.locator("#subject-keys")).to_have_text(
            str(sum(n.startswith("subject/") for n in platform.keys.names()))
        )
        page.screenshot(path=str(ARTIFACTS / "dpo-overview.png"), full_page=True)

        text = page.content()
        for citizen in (CONSENTING, STRANGER, REQUESTER):
            assert platform.citizens.index.handle(citizen) not in text
            assert citizen not in text
        assert not any(p in text for p in PLATES)
        browser.close()

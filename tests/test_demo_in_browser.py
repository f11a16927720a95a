"""During a real `civicguard demo`, an operator's browser sees a scenario's alert appear."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, unavailable

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _wait_for(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_operator_sees_a_scenario_alert_during_the_demo(tmp_path: Path) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        unavailable("playwright", "playwright (PyPI)")
    if not CHROMIUM.exists():
        unavailable("chromium", "chromium (Debian)")
    port = free_port()
    data_dir = tmp_path / "city"
    command = [
        str(Path(sys.executable).with_name("civicguard")),
        "demo",
        "--duration",
        "45",
        "--seed",
        "11",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    demo = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=os.environ | {"COLUMNS": "140"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _up(url + "/api/v1/health") or _up(url + "/"), "the command centre", 60)
        staff = dict(
            line.split(" ", 1) for line in (data_dir / "demo-staff.txt").read_text().splitlines()
        )
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(url + "/")
            page.fill("#username", "operator")
            page.fill("#password", staff["operator"])
            page.click("#login-submit")
            expect(page.locator("#streets path").first).to_be_attached(timeout=15_000)
            # The first scenario is injected after the warm-up; its alert must arrive live.
            expect(page.locator("#alerts li[data-alert]").first).to_be_visible(timeout=40_000)
            expect(page.locator("#incidents li[data-incident]").first).to_be_visible(timeout=5_000)
            expect(page.locator("#markers g.marker").first).to_be_attached()
            artifacts = ROOT / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "demo-command-centre.png"))
            browser.close()
        output, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, output[-3000:]
    last = output.strip().splitlines()[-2:]
    assert last[0].startswith("scenarios detected: "), output[-3000:]
    assert last[1].startswith("false alerts: "), output[-3000:]

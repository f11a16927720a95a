"""The server: first-start admin account and the background WebServer."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from civicguard.govern.accounts import Role, verify
from civicguard.platform import Platform
from civicguard.web.server import INITIAL_PASSWORD_FILE, WebServer, ensure_initial_admin


def test_first_start_creates_an_admin_with_a_random_password(
    platform: Platform, tmp_path: Path
) -> None:
    password = ensure_initial_admin(platform, tmp_path)
    assert password is not None
    assert verify(platform.store.users, "admin", password) is Role.ADMIN
    path = tmp_path / INITIAL_PASSWORD_FILE
    assert path.read_text().strip() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_initial_admin(platform, tmp_path) is None  # only on first start


def test_web_server_serves_the_page_and_stops(platform: Platform) -> None:
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    try:
        page = httpx.get(f"{web.url}/")
        assert page.status_code == 200
        assert "command centre" in page.text
        assert "http" not in page.text.replace("http://www.w3.org", "")  # no external assets
        js = httpx.get(f"{web.url}/static/console.js")
        assert js.status_code == 200
        assert "EventSource" in js.text
    finally:
        web.stop()
    try:
        httpx.get(f"{web.url}/api/v1/health", timeout=1)
        reachable = True
    except httpx.TransportError:
        reachable = False
    assert not reachable

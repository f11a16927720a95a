"""What the browser tests share: Debian's Chromium, how it is launched, and Playwright.

Browser tests drive /usr/bin/chromium through Playwright's ``executable_path``; nothing is
downloaded. A missing Playwright or Chromium is named (and fails under CI=true).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from tests.services import unavailable

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


def playwright() -> ModuleType:
    """``playwright.sync_api`` once Playwright and Chromium are known to be there."""
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("playwright", "playwright (PyPI)")
    if not CHROMIUM.exists():
        unavailable("chromium", "chromium (Debian)")
    return sync_api

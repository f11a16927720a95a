"""Detection tests: whatever alert a test raises on a platform must explain itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .explaining import assert_explained


@pytest.fixture(autouse=True)
def _alerts_explain_themselves(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test with a platform: every stored alert carries a sound explanation."""
    # Asked for before the test runs, so that the platform is torn down after this check.
    platform = request.getfixturevalue("platform") if "platform" in request.fixturenames else None
    yield
    if platform is None:
        return
    for alert in platform.store.alerts.query(limit=10_000):
        assert_explained(alert.as_dict())

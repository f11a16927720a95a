"""Shared fixtures: a platform on a temporary data directory with a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from civicguard.clock import ManualClock
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: Modules whose tests share one expensive running process through a module-scoped fixture
#: (the demo: a browser watches it live, then its summary is checked). Under pytest-xdist they
#: must run on one worker, in order; every other test is scheduled on its own.
RUN_TOGETHER = frozenset({"tests/sim/test_demo.py"})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's ``load`` distribution, but ``RUN_TOGETHER`` modules as one unit, sent first.

    ``--dist loadgroup`` with ``xdist_group`` marks would say this, but pytest-xdist 3.8 groups
    by rewriting node ids, which pytest 9.2 no longer lets it do (pytest-xdist issue 1386).
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        # A scope is one unit of work; the largest scopes go out first (--loadscope-reorder).
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in RUN_TOGETHER else nodeid

    return Scheduling(config, log)


@pytest.fixture
def clock() -> ManualClock:
    """A clock tests move by hand, starting at a fixed instant."""
    return ManualClock(1_790_000_000.0)


@pytest.fixture
def platform(tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    """An embedded platform (SQLite, in-process log) with keys in memory."""
    p = Platform.build(Settings(data_dir=tmp_path / "data"), clock=clock, keys=MemoryKeyStore())
    yield p
    p.close()


# A site inside the demo city (Aguascalientes centro).
CITY_LAT, CITY_LON = 21.8818, -102.2960


@pytest.fixture
def provision(platform: Platform):
    """Provision a device on ``stream``; returns (Device, secret)."""
    from civicguard.ingest.model import Device

    counter = iter(range(1_000_000))

    def make(stream: str, device_id: str | None = None, **place: float) -> tuple[Device, str]:
        device = Device(
            id=device_id or f"{stream.rsplit('.', maxsplit=1)[-1]}-{next(counter):03d}",
            stream=stream,
            lat=place.get("lat", CITY_LAT),
            lon=place.get("lon", CITY_LON),
            district="Centro",
        )
        secret = platform.registry.provision(device, platform.clock.now())
        return device, secret

    return make

"""Shared fixtures: a platform on a temporary data directory with a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from civicguard.clock import ManualClock
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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

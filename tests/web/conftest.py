"""Fixtures of the web tests: a real uvicorn server on a free port, staff of every role, devices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from civicguard.clock import ManualClock
from civicguard.detect.model import Alert, Severity
from civicguard.govern.accounts import Role, hash_password
from civicguard.ingest.model import Device
from civicguard.pipeline import alert_event
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings
from civicguard.web.server import WebServer

#: Every role's account in the tests: username = role, password below.
PASSWORD = "correct horse battery"


_PASSWORD_HASH = hash_password(PASSWORD)


def add_staff(platform: Platform) -> None:
    """One account per role, named after the role (hashed once: scrypt is slow on purpose)."""
    for role in Role:
        platform.store.users.add(role.value, _PASSWORD_HASH, role.value, platform.clock.now())


def login(base_url: str, username: str, password: str = PASSWORD) -> str:
    """A bearer token for ``username``."""
    response = httpx.post(
        f"{base_url}/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def provision(
    platform: Platform,
    device_id: str,
    stream: str,
    district: str = "Centro",
    *,
    lat: float = 21.8818,
    lon: float = -102.2916,
) -> str:
    """Provision a device (by default near the cathedral of the demo city); return its secret."""
    device = Device(
        id=device_id, stream=stream, lat=lat, lon=lon, district=district, label=device_id
    )
    secret = platform.registry.provision(device, platform.clock.now())
    return secret


def raise_alert(
    platform: Platform,
    device_id: str,
    severity: Severity = Severity.HIGH,
    title: str = "Door forced",
) -> Alert:
    """File an alert the way the pipeline does (desk, then live feed) and return it filed.

    TODO: once the rule detector lands, tests can make the door-forced rule raise it instead.
    """
    device = platform.registry.get(device_id)
    assert device is not None
    now = platform.clock.now()
    alert = Alert(
        detector="rules",
        kind="door_forced",
        severity=severity,
        title=title,
        stream=device.stream,
        device_id=device.id,
        cell=platform.ingest.gateway.cell_of(device),
        ts=now,
        created_at=now,
        evidence={"open": 1.0, "access_granted": 0.0},
        explanation=(
            f"{device.id} reported open = 1 and access_granted = 0, which matches the rule "
            "door_forced. Certain (score 1, detector rules)."
        ),
        lat=device.lat,
        lon=device.lon,
    )
    [filed] = platform.desk.file([alert])
    platform.feed.publish(alert_event(filed))
    return filed


def build_platform(data_dir: Path) -> Platform:
    """An embedded platform with keys in memory and a manual clock."""
    return Platform.build(
        Settings(data_dir=data_dir), clock=ManualClock(1_790_000_000.0), keys=MemoryKeyStore()
    )


@pytest.fixture
def server(platform: Platform) -> Iterator[WebServer]:
    """The web app of the test's platform on a free loopback port, with staff of every role."""
    add_staff(platform)
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    yield web
    web.stop()


@pytest.fixture
def tokens(server: WebServer, platform: Platform) -> dict[str, str]:
    """A bearer token per role (issued directly; signing in is tested on its own)."""
    signer = server.app.state.signer
    now = platform.clock.now()
    return {role.value: signer.issue(role.value, role.value, now)[0] for role in Role}


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    """An HTTP client of the test server."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}

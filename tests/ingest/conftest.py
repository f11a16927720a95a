"""MQTT and replay fixtures: a platform with devices, a broker that knows them, the adapter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from civicguard.clock import ManualClock
from civicguard.ingest.model import Device
from civicguard.ingest.mqtt import MqttIngest, write_mosquitto_auth
from civicguard.platform import Platform
from tests.ingest.mosquitto import Broker, mosquitto
from tests.services import require_binary

PLATFORM_USER = "civicguard-platform"
PLATFORM_PASSWORD = "platform-pw-for-tests"
GATEWAY_USER = "shared-gateway"
GATEWAY_PASSWORD = "gateway-pw-for-tests"

DEVICES = (
    Device(id="anpr-01", stream="traffic.anpr", lat=21.8818, lon=-102.2916, district="centro"),
    Device(id="sub-01", stream="power.substation", lat=21.8800, lon=-102.2950, district="centro"),
    Device(id="sub-02", stream="power.substation", lat=21.8700, lon=-102.3000, district="sur"),
    Device(id="wifi-01", stream="presence.wifi", lat=21.8810, lon=-102.2960, district="centro"),
    Device(id="app-01", stream="citizen.safety_app", lat=21.8850, lon=-102.2900, district=""),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttWorld:
    """A platform with provisioned devices, a broker that knows them, and the running adapter."""

    platform: Platform
    broker: Broker
    adapter: MqttIngest
    secrets: dict[str, str]
    clock: ManualClock


@pytest.fixture
def provisioned(platform: Platform, clock: ManualClock) -> dict[str, str]:
    """The demo devices, provisioned; device id -> secret."""
    secrets = platform.registry.provision_many(DEVICES, clock.now())
    return secrets


@pytest.fixture
def mqtt_world(
    platform: Platform, provisioned: dict[str, str], clock: ManualClock, tmp_path: Path
) -> Iterator[MqttWorld]:
    """Mosquitto with password auth + ACL, the adapter subscribed, the processor running."""
    require_binary("mosquitto_passwd", "Debian package mosquitto")
    passwd, acl = write_mosquitto_auth(
        platform.registry,
        tmp_path / "broker",
        PLATFORM_USER,
        PLATFORM_PASSWORD,
        gateways={GATEWAY_USER: GATEWAY_PASSWORD},
    )
    with mosquitto(tmp_path / "broker", password_file=passwd, acl_file=acl) as broker:
        adapter = MqttIngest(
            platform.ingest,
            platform.registry,
            broker.host,
            broker.port,
            PLATFORM_USER,
            PLATFORM_PASSWORD,
            trust_topic=True,  # this broker's ACL binds each device to its own topic
        )
        adapter.start()
        platform.start_processing()
        try:
            yield MqttWorld(
                platform=platform, broker=broker, adapter=adapter, secrets=provisioned, clock=clock
            )
        finally:
            adapter.stop()

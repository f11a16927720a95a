"""The MQTT benchmark runs end to end on a small burst (figures are printed, never asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicguard.benchmarks.mqtt import compare_mqtt
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings
from tests.services import require_binary


@pytest.mark.mqtt
def test_compare_mqtt_delivers_every_message_on_both_paths(tmp_path: Path) -> None:
    require_binary("mosquitto", "Debian package mosquitto")
    require_binary("mosquitto_pub", "Debian package mosquitto-clients")

    def make_platform() -> Platform:
        return Platform.build(Settings(data_dir=tmp_path / "bench"), keys=MemoryKeyStore())

    figures = compare_mqtt("127.0.0.1", 0, 400, make_platform, time_limit=60)
    print(figures)
    assert figures["complete"] is True
    assert figures["received"] == 400
    assert figures["dead_letters"] == 0
    assert figures["bare_msgs_per_s"] > 0
    assert figures["civicguard_msgs_per_s"] > 0

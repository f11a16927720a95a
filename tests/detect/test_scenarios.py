"""Each detector against the demo's scripted scenario, through the real ingest path.

Devices are provisioned on an embedded platform, send normal readings once a (manual)
second for a warm-up, then one of them is attacked. Every scenario asserts that nothing
fires during normal traffic, that the right detector fires within 5 s of the injection, and
that a long attack raises one alert per device and kind, not one per reading.
"""

from __future__ import annotations

from typing import Any

import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.clock import ManualClock
from civicguard.ingest.model import Device, Reason, Transport
from civicguard.platform import Platform

from .traffic import CityTraffic

WARMUP_S = 40


class Town:
    """A few devices of some streams, sending normal readings through ``platform.ingest``."""

    def __init__(self, platform: Platform, clock: ManualClock, *streams: str) -> None:
        self.platform = platform
        self.clock = clock
        self.traffic = CityTraffic(demo_catalog(), per_stream=3, streams=streams)
        devices = [d for ds in self.traffic.devices.values() for d in ds]
        platform.registry.provision_many(devices, clock.now())
        self.seq = {d.id: 0 for d in devices}
        self.alerts: list[dict[str, Any]] = []
        platform.feed.subscribe(self.alerts.append)

    def device(self, stream: str, i: int = 0) -> Device:
        """The ``i``-th device of ``stream``."""
        return self.traffic.devices[stream][i]

    def send(self, device: Device, **override: float | bool) -> None:
        """One reading of ``device`` now, normal unless fields are overridden."""
        self.seq[device.id] += 1
        body = self.traffic.body(device, self.seq[device.id], self.clock.now(), **override)
        result = self.platform.ingest.submit(device, body, Transport.HTTP)
        assert result.accepted == 1, result.rejections

    def second(
        self,
        attack: dict[str, dict[str, float | bool]] | None = None,
        silent: tuple[str, ...] = (),
    ) -> None:
        """Every device reports once (``attack`` overrides some fields), then time passes."""
        attack = attack or {}
        for devices in self.traffic.devices.values():
            for device in devices:
                if device.id not in silent:
                    self.send(device, **attack.get(device.id, {}))
        self.process()
        self.clock.advance(1.0)

    def process(self) -> None:
        """Drain the event log through the pipeline and let detectors see the clock."""
        while self.platform.processor.run_once(timeout=0.0):
            pass
        self.platform.processor.tick()

    def warm_up(self) -> float:
        """Normal traffic long enough for every baseline to settle; returns the time after."""
        for _ in range(WARMUP_S):
            self.second()
        assert [a["title"] for a in self.alerts] == [], "false alerts on normal traffic"
        return self.clock.now()

    def by(self, detector: str, device: Device | None = None) -> list[dict[str, Any]]:
        """Alerts raised by ``detector`` (about ``device``)."""
        return [
            a
            for a in self.alerts
            if a["detector"] == detector and (device is None or a["device_id"] == device.id)
        ]


def assert_prompt(alerts: list[dict[str, Any]], injected: float) -> None:
    """The first alert came within 5 s of the injection, created on the platform's clock."""
    assert alerts, "no alert"
    first = min(alerts, key=lambda a: a["created_at"])
    assert 0.0 <= first["created_at"] - injected <= 5.0


def test_substation_attack_trips_band_rate_and_anomaly(
    platform: Platform, clock: ManualClock
) -> None:
    """Frequency to 51.2 Hz and voltage to 12.6 kV at one substation, held for 15 s."""
    town = Town(platform, clock, "power.substation")
    target = town.device("power.substation", 1)
    injected = town.warm_up()
    for _ in range(15):
        town.second(attack={target.id: {"frequency": 51.2, "voltage": 12.6}})
    band = town.by("normal_band", target)
    assert sorted(a["evidence"]["field"] for a in band) == ["frequency", "voltage"]
    assert all(a["severity"] == "high" for a in band)
    (frequency,) = [a for a in band if a["evidence"]["field"] == "frequency"]
    assert frequency["title"].startswith(
        "Frequency 51.20 Hz outside normal band 49.60\u201350.40 Hz at substation"
    )
    assert frequency["evidence"]["readings"][0]["values"]["frequency"] == 51.2
    assert frequency["lat"] == target.lat and frequency["cell"]
    assert_prompt(band, injected)
    rate = town.by("rate_of_change", target)
    assert sorted(a["evidence"]["field"] for a in rate) == ["frequency", "voltage"]
    assert_prompt(rate, injected)
    anomaly = town.by("streaming_anomaly", target)
    assert {a["evidence"]["field"] for a in anomaly} >= {"frequency", "voltage"}
    assert len(anomaly) == len({a["evidence"]["field"] for a in anomaly})
    assert_prompt(anomaly, injected)
    assert len(anomaly[0]["evidence"]["readings"]) == 3
    assert {a["device_id"] for a in town.alerts} == {target.id}


def test_tank_level_spoofing_trips_rate_and_anomaly(platform: Platform, clock: ManualClock) -> None:
    """The level jumps by 3 m and then stays perfectly flat."""
    town = Town(platform, clock, "water.tank")
    target = town.device("water.tank", 0)
    injected = town.warm_up()
    spoofed = town.traffic.values(target, clock.now())["level"] + 3.0
    for _ in range(15):
        town.second(attack={target.id: {"level": spoofed}})
    (rate,) = town.by("rate_of_change", target)
    assert rate["evidence"]["field"] == "level"
    assert rate["severity"] == "high"
    assert rate["evidence"]["score"] > 1.0
    assert_prompt([rate], injected)
    (anomaly,) = [
        a for a in town.by("streaming_anomaly", target) if a["evidence"]["field"] == "level"
    ]
    assert_prompt([anomaly], injected)
    assert {a["device_id"] for a in town.alerts} == {target.id}


def test_door_forced_trips_the_catalog_rule_once(platform: Platform, clock: ManualClock) -> None:
    """A door opened without an access grant and left open for 20 s: one high alert."""
    town = Town(platform, clock, "access.door")
    target = town.device("access.door", 2)
    injected = town.warm_up()
    for _ in range(20):
        town.second(attack={target.id: {"open": True, "access_granted": False}})
    (forced,) = town.by("rules", target)
    assert forced["kind"] == "door_forced" and forced["severity"] == "high"
    assert forced["title"].startswith("Door forced open")
    assert forced["evidence"]["readings"][0]["values"] == {"open": 1.0, "access_granted": 0.0}
    assert_prompt([forced], injected)
    assert len(town.alerts) == 1


def test_crowd_surge_trips_band_and_rate(platform: Platform, clock: ManualClock) -> None:
    """Occupancy climbs 15 %/s from 40 % to 130 % and stays there."""
    town = Town(platform, clock, "crowd.counter")
    target = town.device("crowd.counter", 0)
    injected = town.warm_up()
    for step in range(12):
        town.second(attack={target.id: {"occupancy": min(40.0 + 15.0 * step, 130.0)}})
    (band,) = town.by("normal_band", target)
    assert band["evidence"]["field"] == "occupancy"
    assert_prompt([band], injected)
    rate = town.by("rate_of_change", target)
    assert len(rate) == 1
    assert_prompt(rate, injected)
    assert {a["device_id"] for a in town.alerts} == {target.id}


def test_flooding_device_raises_one_flood_alert(platform: Platform, clock: ManualClock) -> None:
    """One device sends 50 readings a second for 10 s; the others stay at one a second."""
    town = Town(platform, clock, "air.quality")
    target = town.device("air.quality", 1)
    injected = town.warm_up()
    for _ in range(10):
        for _ in range(50):
            town.send(target)
            clock.advance(0.02)
        town.process()
        clock.advance(-1.0)
        town.second(silent=(target.id,))
    (flood,) = town.by("flood")
    assert flood["device_id"] == target.id and flood["severity"] == "high"
    assert flood["created_at"] - injected <= 1.0
    assert flood["evidence"]["count"] == 11
    assert flood["evidence"]["span_s"] <= 2.0


def test_silent_device_raises_one_alert_per_silence(platform: Platform, clock: ManualClock) -> None:
    """A pump stops reporting for 20 s, reports again, then stops again."""
    town = Town(platform, clock, "water.pump")
    target = town.device("water.pump", 0)
    town.warm_up()
    last_heard = clock.now() - 1.0
    for _ in range(20):
        town.second(silent=(target.id,))
    (silence,) = town.by("silence", target)
    assert silence["severity"] == "medium"
    assert silence["created_at"] - (last_heard + 1.0) <= 5.0
    assert silence["evidence"]["threshold_s"] == pytest.approx(4.0)
    for _ in range(3):
        town.second()
    for _ in range(10):
        town.second(silent=(target.id,))
    assert len(town.by("silence", target)) == 2
    assert {a["device_id"] for a in town.alerts} == {target.id}


def test_a_pipeline_behind_its_devices_does_not_make_them_silent(
    platform: Platform, clock: ManualClock
) -> None:
    """The pipeline runs 8 s behind the pumps (a backlog); one pump really stops."""
    town = Town(platform, clock, "water.pump")
    target = town.device("water.pump", 0)
    pumps = town.traffic.devices["water.pump"]
    town.warm_up()
    for _ in range(8):  # the backlog builds up: readings arrive, none is processed yet
        for device in pumps:
            town.send(device)
        clock.advance(1.0)
    for _ in range(20):  # then one second of readings is processed per second: 8 s behind
        for device in pumps:
            if device.id != target.id:
                town.send(device)
        platform.processor.run_once(max_events=len(pumps), timeout=0.0)
        platform.processor.tick()
        clock.advance(1.0)
    # The stopped pump is raised once its last readings have come through the backlog;
    # the others, whose readings all wait in the backlog, are not.
    (silence,) = town.by("silence")
    assert silence["device_id"] == target.id
    assert silence["evidence"]["silent_for_s"] < 6.0


def test_a_city_wide_outage_is_still_raised_for_every_device(
    platform: Platform, clock: ManualClock
) -> None:
    """Every pump stops at once: nothing comes through, so the clock measures the silence."""
    town = Town(platform, clock, "water.pump")
    town.warm_up()
    for _ in range(10):
        town.process()
        clock.advance(1.0)
    silent = {a["device_id"] for a in town.by("silence")}
    assert silent == {d.id for d in town.traffic.devices["water.pump"]}


def test_replayed_message_raises_a_high_alert(platform: Platform, clock: ManualClock) -> None:
    """An old captured message is sent again after the device moved past the replay window."""
    town = Town(platform, clock, "power.substation")
    target = town.device("power.substation", 0)
    captured = town.traffic.body(target, 1, clock.now())
    town.seq[target.id] = 1
    platform.ingest.submit(target, captured, Transport.HTTP)
    town.warm_up()
    injected = clock.now()
    for _ in range(3):
        result = platform.ingest.submit(target, captured, Transport.HTTP)
        assert [r.reason for r in result.rejections] == [Reason.REPLAYED_SEQUENCE]
        town.second()
    (replay,) = town.by("replay")
    assert replay["device_id"] == target.id and replay["severity"] == "high"
    assert "sequence number 1 " in replay["title"]
    assert replay["evidence"]["seq"] == 1
    assert replay["cell"] and replay["lat"] == target.lat
    assert_prompt([replay], injected)

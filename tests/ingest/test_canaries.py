"""Invariant 1 across every entry: raw plates and MACs sent over HTTP, MQTT and file replay, good
or malformed, reach neither the database files, the event log, nor the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import orjson
import pytest

from civicguard.bus import codec
from civicguard.ingest.replay import replay_file
from civicguard.privacy.gateway import normalise_identifier
from civicguard.store.backup import create_backup
from civicguard.web.server import WebServer
from tests.ingest.conftest import MqttWorld
from tests.ingest.test_mqtt import device_client, publish, wait_for

PLATES = ["CNRY-101", "CNRY 202", "CNRY303X"]


def _anpr(seq: int, ts: float, plate: str) -> dict:
    values = {"plate": plate, "lane": 1, "speed": 33.0, "vehicle_class": "bus"}
    return {"seq": seq, "ts": ts, "values": values}


@pytest.mark.mqtt
def test_no_entry_lets_a_raw_plate_through(
    mqtt_world: MqttWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = mqtt_world
    platform = world.platform
    secret = world.secrets["anpr-01"]
    events: list[bytes] = []
    publish_events = platform.log.publish

    def tap(batch):  # every event the log carries, as it would travel on JetStream
        events.extend(codec.encode(e) for e in batch)
        publish_events(batch)

    platform.log.publish = tap  # type: ignore[method-assign]
    now = world.clock.now()
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    try:
        auth = {"Authorization": f"Bearer {secret}"}
        url = f"{web.url}/api/v1/ingest"
        assert httpx.post(url, headers=auth, content=orjson.dumps(_anpr(1, now, PLATES[0])))
        bad = _anpr(2, now, PLATES[1]) | {"colour": "red"}
        assert httpx.post(url, headers=auth, content=orjson.dumps(bad)).status_code == 422
        broken = b'{"seq": 3, "values": {"plate": "' + PLATES[2].encode() + b'"'
        assert httpx.post(url, headers=auth, content=broken).status_code == 400
        nobody = {"Authorization": "Bearer not-a-device"}
        assert httpx.post(url, headers=nobody, content=orjson.dumps(_anpr(4, now, PLATES[0])))
    finally:
        web.stop()
    with device_client(world, "anpr-01", secret) as client:
        publish(client, "civicguard/anpr-01/readings", orjson.dumps(_anpr(10, now, PLATES[1])))
        publish(client, "civicguard/anpr-01/readings", broken)
        publish(client, "civicguard/anpr-01/readings", orjson.dumps(_anpr(1, now, PLATES[2])))
    wait_for(lambda: world.adapter.handled >= 3, "the MQTT messages handed to ingest")
    lines = [
        orjson.dumps(_anpr(20 + i, now, p) | {"device": "anpr-01"}) for i, p in enumerate(PLATES)
    ]
    lines.append(b'{"device": "anpr-01", "seq": 30, "values": {"plate": "' + PLATES[0].encode())
    replay = tmp_path / "reads.jsonl"
    replay.write_bytes(b"\n".join(lines) + b"\n")
    report = replay_file(platform, replay)
    assert (report.accepted, report.rejected) == (3, 1)
    wait_for(lambda: platform.store.readings.count() == 5, "five good reads stored")
    wait_for(lambda: sum(platform.store.dead_letters.count_by_reason().values()) >= 6, "refusals")
    platform.close()

    spellings = set()
    for plate in PLATES:
        spellings |= {plate, plate.lower(), normalise_identifier("licence_plate", plate)}
    blobs = {
        str(p): p.read_bytes() for p in Path(platform.settings.data_dir).rglob("*") if p.is_file()
    }
    blobs |= {f"event {i}": e for i, e in enumerate(events)}
    blobs["logs"] = caplog.text.encode()
    blobs["broker log"] = world.broker.log_text().encode()
    assert len(events) >= 8
    leaks = [(name, s) for name, blob in blobs.items() for s in spellings if s.encode() in blob]
    assert leaks == []


MACS = ["C4:0A:7E:00:00:01", "c4-0a-7e-00-00-02"]
CITIZENS = ["canary-citizen-4711", "canary-citizen-0815"]
REPORT_CANARIES = ["canary.reporter@example.org", "+52 449 123 4567", "AGU-123-A"]


def _spellings(values: list[str]) -> set[str]:
    out: set[str] = set()
    for value in values:
        bare = value.replace(":", "").replace("-", "").replace(" ", "").replace("+", "")
        out |= {value, value.lower(), value.upper(), bare, bare.lower()}
    return out


def _wifi(seq: int, ts: float, macs: list[str]) -> dict:
    return {"seq": seq, "ts": ts, "values": {"macs": macs, "devices": len(macs)}}


def _app(seq: int, ts: float, citizen: str) -> dict:
    return {"seq": seq, "ts": ts, "values": {"citizen": citizen, "lat": 21.88, "lon": -102.29}}


@pytest.mark.mqtt
def test_no_entry_lets_a_mac_a_citizen_id_or_a_reporters_contact_through(
    mqtt_world: MqttWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MACs over MQTT and replay, citizen ids over HTTP (with and without consent), a citizen
    report full of contact details: none reach the database, its backup, events or logs."""
    caplog.set_level(logging.DEBUG)
    world = mqtt_world
    platform = world.platform
    events: list[bytes] = []
    publish_events = platform.log.publish

    def tap(batch):
        events.extend(codec.encode(e) for e in batch)
        publish_events(batch)

    platform.log.publish = tap  # type: ignore[method-assign]
    now = world.clock.now()
    with device_client(world, "wifi-01", world.secrets["wifi-01"]) as client:
        publish(client, "civicguard/wifi-01/readings", orjson.dumps(_wifi(1, now, MACS)))
        bad = _wifi(2, now, MACS) | {"extra": MACS[0]}
        publish(client, "civicguard/wifi-01/readings", orjson.dumps(bad))
    wait_for(lambda: world.adapter.handled >= 2, "the Wi-Fi messages handed to ingest")

    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    try:
        app = {"Authorization": f"Bearer {world.secrets['app-01']}"}
        base = f"{web.url}/api/v1"
        granted = httpx.post(
            f"{base}/citizens/consent/grant", headers=app, json={"citizen": CITIZENS[0]}
        )
        assert granted.status_code == 201, granted.text
        for seq, citizen in enumerate(CITIZENS, start=1):
            sent = httpx.post(
                f"{base}/ingest", headers=app, content=orjson.dumps(_app(seq, now, citizen))
            )
            assert sent.status_code < 500
        text = "Broken lamp; call me at {1} or write to {0}, car {2} blocks the way".format(
            *REPORT_CANARIES
        )
        filed = httpx.post(
            f"{base}/citizens/reports",
            headers=app,
            json={"text": text, "category": "lighting", "citizen": CITIZENS[0]},
        )
        assert filed.status_code == 201, filed.text
        anonymous = httpx.post(
            f"{base}/citizens/reports", json={"text": text, "category": "lighting"}
        )
        assert anonymous.status_code == 201, anonymous.text
    finally:
        web.stop()

    lines = [orjson.dumps(_wifi(10, now, MACS) | {"device": "wifi-01"})]
    lines.append(b'{"device": "wifi-01", "seq": 11, "values": {"macs": ["' + MACS[1].encode())
    replay = tmp_path / "wifi.jsonl"
    replay.write_bytes(b"\n".join(lines) + b"\n")
    report = replay_file(platform, replay)
    assert (report.accepted, report.rejected) == (1, 1)
    wait_for(lambda: platform.store.readings.count() == 3, "2 Wi-Fi and 1 app reading stored")
    refused = platform.store.dead_letters.count_by_reason()
    assert refused.get("no_consent") == 1, refused
    backup = create_backup(platform.store.engine, tmp_path / "backup" / "db.backup").path
    platform.close()

    blobs = {
        str(p): p.read_bytes() for p in Path(platform.settings.data_dir).rglob("*") if p.is_file()
    }
    blobs["backup"] = backup.read_bytes()
    blobs |= {f"event {i}": e for i, e in enumerate(events)}
    blobs["logs"] = caplog.text.encode()
    blobs["broker log"] = world.broker.log_text().encode()
    assert len(events) >= 4
    spellings = _spellings(MACS + CITIZENS + REPORT_CANARIES)
    leaks = [(name, s) for name, blob in blobs.items() for s in spellings if s.encode() in blob]
    assert leaks == []

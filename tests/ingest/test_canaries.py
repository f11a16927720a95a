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

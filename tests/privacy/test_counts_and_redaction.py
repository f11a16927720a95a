"""What the gateway did, counted per stream; dead letters of personal streams treated too."""

from __future__ import annotations

import h3
import orjson

from civicguard.ingest.model import Reason, Rejection, Transport
from civicguard.metrics import METRICS
from civicguard.platform import Platform

MACS = ["3c:22:fb:10:aa:01", "3C-22-FB-10-AA-01", "a4:83:e7:00:11:22"]


def metric(stream: str, action: str) -> float:
    value = METRICS.registry.get_sample_value(
        "civicguard_privacy_gateway_total", {"stream": stream, "action": action}
    )
    return value or 0.0


def test_counts_per_stream_and_treatment(platform: Platform, provision) -> None:
    camera, _ = provision("traffic.anpr")
    counter, _ = provision("presence.wifi")
    before = {a: metric("traffic.anpr", a) for a in ("readings", "refused", "pseudonymised")}
    now = platform.clock.now()
    reads = [
        {"seq": i, "ts": now, "values": {"plate": "AGS1", "lane": 1, "speed": s,
                                         "vehicle_class": "car"}}
        for i, s in ((1, 40.0), (2, 41.0), (3, 999.0))  # the last is out of range: refused
    ]  # fmt: skip
    platform.ingest.submit(camera, orjson.dumps(reads), Transport.HTTP)
    wifi = [
        {"seq": 1, "ts": now, "values": {"macs": MACS, "devices": 2, "rssi_mean": -60.0}},
        {"seq": 2, "ts": now, "values": {"macs": MACS[:1], "devices": 1}},
    ]
    platform.ingest.submit(counter, orjson.dumps(wifi), Transport.HTTP)
    counts = platform.ingest.gateway.counts()
    assert counts["traffic.anpr"] == {
        "readings": 2,
        "refused": 1,
        "kept": 6,  # lane, speed and vehicle class of two readings
        "generalised": 0,
        "pseudonymised": 2,
        "counted": 0,
        "dropped": 0,
    }
    assert counts["presence.wifi"] == {
        "readings": 2,
        "refused": 0,
        "kept": 2,  # devices
        "generalised": 0,
        "pseudonymised": 0,
        "counted": 2,  # the MAC lists
        "dropped": 1,  # one rssi_mean was sent
    }
    assert metric("traffic.anpr", "readings") - before["readings"] == 2
    assert metric("traffic.anpr", "refused") - before["refused"] == 1
    assert metric("traffic.anpr", "pseudonymised") - before["pseudonymised"] == 2


def test_wifi_presence_is_stored_only_as_counts(platform: Platform, provision) -> None:
    counter, _ = provision("presence.wifi")
    now = platform.clock.now()
    body = [{"seq": 1, "ts": now, "values": {"macs": MACS, "devices": 3}}]
    platform.ingest.submit(counter, orjson.dumps(body), Transport.HTTP)
    while platform.processor.run_once(timeout=0):
        pass
    (row,) = platform.store.readings.query(stream="presence.wifi")
    assert row["values"] == {"devices": 3.0, "macs": 2.0}  # two distinct addresses
    assert row["cell"] == h3.latlng_to_cell(counter.lat, counter.lon, 9)


def test_dead_letters_of_a_located_stream_keep_no_coordinates(platform: Platform) -> None:
    lat, lon = 21.8812345, -102.2965432
    raw = {
        "seq": 4,
        "ts": 1_790_000_123.0,
        "owner": "Ana Pérez",
        "values": {"citizen": "CURP-ABC-99", "lat": lat, "lon": lon, "accuracy": 3.0,
                   "nickname": "ana"},
    }  # fmt: skip
    refusal = Rejection(
        reason=Reason.UNKNOWN_FIELD,
        detail="unknown key(s): owner",
        transport=Transport.HTTP,
        received_at=platform.clock.now(),
        device_id="app-1",
        stream="citizen.safety_app",
        seq=4,
        payload=orjson.dumps(raw),
    )
    kept = platform.ingest.gateway.redact(refusal, authenticated=True)
    text = kept.payload.decode()
    for secret in ("21.881", "-102.296", "CURP-ABC-99", "Ana", "ana", "3.0"):
        assert secret not in text, secret
    doc = orjson.loads(kept.payload)
    assert doc["values"]["cell"] == h3.latlng_to_cell(lat, lon, 8)
    assert doc["values"]["citizen"].startswith("ps_")
    assert doc["values"]["nickname"] == "[withheld]"
    assert doc["withheld_keys"] == ["owner"]
    assert doc["ts"] % 300 == 0  # the stream's 5-minute time bucket

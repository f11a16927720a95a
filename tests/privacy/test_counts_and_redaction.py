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
    assert "nickname" not in doc["values"]  # undeclared names are the sender's text: counted
    assert doc["withheld_fields"] == 1
    assert doc["withheld_keys"] == 1
    assert "owner" not in text
    assert doc["ts"] % 300 == 0  # the stream's 5-minute time bucket


PLATE = "AGS-744-K"


def _refusal(stream: str, raw: object, **over: object) -> Rejection:
    fields: dict = {
        "reason": Reason.WRONG_TYPE,
        "detail": "ts: a string must be an ISO 8601 time with a timezone",
        "transport": Transport.HTTP,
        "received_at": 1_790_000_000.0,
        "device_id": "dev-1",
        "stream": stream,
        "seq": 4,
        "payload": orjson.dumps(raw),
    }
    return Rejection(**(fields | over))


def test_only_a_numeric_time_is_kept_in_a_redacted_payload(platform: Platform) -> None:
    gateway = platform.ingest.gateway
    values = {"plate": "XYZ-1", "lane": 1, "speed": 40.0, "vehicle_class": "car"}
    for ts in (PLATE, [PLATE], {"at": PLATE}, True):
        raw = {"seq": 4, "ts": ts, "values": values}
        kept = gateway.redact(_refusal("traffic.anpr", raw), authenticated=True)
        assert PLATE.encode() not in kept.payload
        assert "ts" not in orjson.loads(kept.payload)
    raw = {"seq": 4, "ts": 1_790_000_001.5, "values": values}
    kept = gateway.redact(_refusal("traffic.anpr", raw), authenticated=True)
    assert orjson.loads(kept.payload)["ts"] == 1_790_000_001.5


def test_no_stream_keeps_an_identifier_in_a_refused_payload(platform: Platform) -> None:
    """Every field and envelope key, personal stream or not: what is kept is safe by type."""
    gateway = platform.ingest.gateway
    for stream in platform.catalog.streams:
        for field in stream.fields:
            for wrong in (PLATE, [PLATE], {PLATE: PLATE}):
                raw = {"seq": 1, "ts": 1_790_000_000.0, "values": {field.name: wrong, PLATE: 1}}
                kept = gateway.redact(_refusal(stream.name, raw), authenticated=True)
                assert PLATE.encode() not in kept.payload, (stream.name, field.name, kept.payload)
        for key in ("device", "stream", "seq", "ts", "values", "location", "position", PLATE):
            raw = {"seq": 1, "ts": 1_790_000_000.0, "values": {}, key: PLATE}
            kept = gateway.redact(_refusal(stream.name, raw), authenticated=True)
            assert PLATE.encode() not in kept.payload, (stream.name, key, kept.payload)
    for body in (orjson.dumps([PLATE]), PLATE.encode(), b'{"values": "' + PLATE.encode()):
        kept = gateway.redact(_refusal("power.substation", None, payload=body), authenticated=True)
        assert PLATE.encode() not in kept.payload
    # A substation reading's own numbers are still there to explain the refusal.
    good = {"seq": 1, "ts": 1_790_000_000.0, "values": {"voltage": 99.0, "load": PLATE}}
    doc = orjson.loads(
        gateway.redact(_refusal("power.substation", good), authenticated=True).payload
    )
    assert doc["values"] == {"voltage": 99.0, "load": "[withheld]"}
    assert doc["seq"] == 1


def test_an_unknown_devices_claimed_id_is_not_kept(platform: Platform) -> None:
    refusal = _refusal(
        "traffic.anpr",
        None,
        reason=Reason.UNKNOWN_DEVICE,
        detail=f"device {PLATE!r} is not provisioned",
        device_id=PLATE,
        payload=b"",
    )
    kept = platform.ingest.gateway.redact(refusal, authenticated=False)
    assert kept.device_id is None
    assert PLATE not in kept.detail
    assert kept.reason is Reason.UNKNOWN_DEVICE

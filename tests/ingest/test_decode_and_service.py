"""Ingest refuses bad input with a clear reason, stores good input once, loses nothing."""

from __future__ import annotations

import orjson
import pytest

from civicguard.ingest.model import Reason, Transport
from civicguard.ingest.registry import AuthError, sign


def _reading(seq: int, ts: float, **values: object) -> dict:
    return {"seq": seq, "ts": ts, "values": values}


def _substation(seq: int, ts: float, **over: object) -> dict:
    values = {"voltage": 11.0, "frequency": 50.0, "load": 12.0} | over
    return _reading(seq, ts, **values)


def _submit(platform, device, items):
    return platform.ingest.submit(device, orjson.dumps(items), Transport.HTTP)


def _drain(platform) -> None:
    while platform.processor.run_once(timeout=0):
        pass


BAD_READINGS = [
    (
        {"seq": 1, "values": {"voltage": 11.0, "frequency": 50.0, "load": 1.0}},
        Reason.MISSING_FIELD,
        "ts",
    ),
    ({"ts": 0, "values": {}}, Reason.MISSING_FIELD, "seq"),
    ({"seq": "one", "ts": 0, "values": {}}, Reason.WRONG_TYPE, "seq"),
    (
        {"seq": 1, "ts": 0, "values": {"voltage": "high", "frequency": 50.0, "load": 1.0}},
        Reason.WRONG_TYPE,
        "values.voltage",
    ),
    (
        {"seq": 1, "ts": 0, "values": {"frequency": 50.0, "load": 1.0}},
        Reason.MISSING_FIELD,
        "values.voltage",
    ),
    (
        {"seq": 1, "ts": 0, "values": {"voltage": 99.0, "frequency": 50.0, "load": 1.0}},
        Reason.OUT_OF_RANGE,
        "values.voltage",
    ),
    (
        {"seq": 1, "ts": 0, "values": {"voltage": 11.0, "frequency": 50.0, "load": 1.0, "x": 1}},
        Reason.UNKNOWN_FIELD,
        "values: 1 field(s) not declared",  # named by rule, never by the sender's text
    ),
    ({"seq": 1, "ts": "yesterday", "values": {}}, Reason.WRONG_TYPE, "ts"),
    (
        {"seq": 1, "ts": 0, "stream": "water.tank", "values": {}},
        Reason.STREAM_MISMATCH,
        "stream: not the device's stream 'power.substation'",
    ),
    (
        {"seq": 1, "ts": 0, "stream": "martian.radio", "values": {}},
        Reason.UNKNOWN_STREAM,
        "nor any stream of the catalog",
    ),
    (
        {"seq": 1, "ts": 0, "device": "someone-else", "values": {}},
        Reason.DEVICE_MISMATCH,
        "device: names another device",
    ),
    ([1, 2], Reason.NOT_AN_OBJECT, "object"),
]


@pytest.mark.parametrize(("item", "reason", "mentions"), BAD_READINGS)
def test_bad_reading_is_refused_with_reason_and_kept(platform, provision, item, reason, mentions):
    device, _ = provision("power.substation")
    now = platform.clock.now()
    if isinstance(item, dict) and item.get("ts") == 0:
        item["ts"] = now
    result = _submit(platform, device, [item])
    assert result.accepted == 0
    assert [r.reason for r in result.rejections] == [reason]
    assert mentions in result.rejections[0].detail
    for sent in ("water.tank", "martian.radio", "someone-else", "yesterday"):
        assert sent not in result.rejections[0].detail  # the sender's value is never echoed
    _drain(platform)
    letters = platform.store.dead_letters.query()
    assert [d["reason"] for d in letters] == [reason.value]
    assert letters[0]["device_id"] == device.id


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(3600.0, Reason.TIMESTAMP_IN_FUTURE), (-3 * 86400.0, Reason.TIMESTAMP_TOO_OLD)],
)
def test_timestamps_far_from_now_are_refused(platform, provision, offset, reason):
    device, _ = provision("power.substation")
    result = _submit(platform, device, [_substation(1, platform.clock.now() + offset)])
    assert [r.reason for r in result.rejections] == [reason]


def test_malformed_and_oversized_bodies_are_dead_letters(platform, provision):
    device, _ = provision("power.substation")
    bad = platform.ingest.submit(device, b'{"seq": 1, "ts": ', Transport.MQTT)
    big = platform.ingest.submit(
        device, b" " * (platform.catalog.limits.max_payload_bytes + 1), Transport.MQTT
    )
    assert bad.rejections[0].reason is Reason.MALFORMED_JSON
    assert big.rejections[0].reason is Reason.OVERSIZED
    _drain(platform)
    assert platform.store.dead_letters.count_by_reason() == {
        "malformed_json": 1,
        "oversized_payload": 1,
    }


def test_iso_timestamps_with_timezone_are_accepted(platform, provision):
    from datetime import UTC, datetime

    device, _ = provision("power.substation")
    iso = datetime.fromtimestamp(platform.clock.now(), tz=UTC).isoformat()
    result = _submit(platform, device, [_substation(1, iso)])
    assert result.accepted == 1
    naive = _submit(platform, device, [_substation(2, iso.replace("+00:00", ""))])
    assert naive.rejections[0].reason is Reason.WRONG_TYPE


def test_batch_keeps_good_readings_and_refuses_bad_ones(platform, provision):
    device, _ = provision("power.substation")
    now = platform.clock.now()
    items = [_substation(i, now + i * 0.001) for i in range(10)]
    items[3]["values"]["frequency"] = 75.0
    items[7]["values"]["load"] = "lots"
    result = _submit(platform, device, items)
    assert result.accepted == 8
    assert sorted((r.index, r.reason) for r in result.rejections) == [
        (3, Reason.OUT_OF_RANGE),
        (7, Reason.WRONG_TYPE),
    ]
    _drain(platform)
    assert platform.store.readings.count() == 8
    stored = {r["seq"] for r in platform.store.readings.query(limit=100)}
    assert stored == {0, 1, 2, 4, 5, 6, 8, 9}


def test_duplicates_are_stored_once_and_replays_refused(platform, provision):
    device, _ = provision("power.substation")
    now = platform.clock.now()
    first = [_substation(i, now + i) for i in range(1, 60)]
    assert _submit(platform, device, first).accepted == 59
    again = _submit(platform, device, first[-5:])
    assert (again.accepted, again.duplicates, again.rejections) == (0, 5, [])
    replay = _submit(platform, device, [first[0]])
    assert [r.reason for r in replay.rejections] == [Reason.REPLAYED_SEQUENCE]
    reused = _submit(platform, device, [_substation(59, now + 59, load=13.0)])
    assert [r.reason for r in reused.rejections] == [Reason.REPLAYED_SEQUENCE]
    _drain(platform)
    assert platform.store.readings.count() == 59
    assert platform.store.dead_letters.count_by_reason() == {"replayed_sequence": 2}


def test_late_readings_inside_the_window_are_accepted(platform, provision):
    device, _ = provision("power.substation")
    now = platform.clock.now()
    assert _submit(platform, device, [_substation(10, now)]).accepted == 1
    assert _submit(platform, device, [_substation(8, now - 2)]).accepted == 1


def test_sequence_protection_survives_a_restart(tmp_path, clock):
    from civicguard.ingest.model import Device
    from civicguard.platform import Platform
    from civicguard.privacy.keys import MemoryKeyStore
    from civicguard.settings import Settings

    keys = MemoryKeyStore()
    settings = Settings(data_dir=tmp_path)
    first = Platform.build(settings, clock=clock, keys=keys)
    device = Device(id="sub-1", stream="power.substation", lat=21.88, lon=-102.29)
    first.registry.provision(device, clock.now())
    items = [_substation(i, clock.now()) for i in range(1, 100)]
    _submit(first, device, items)
    _drain(first)
    first.close()
    second = Platform.build(settings, clock=clock, keys=keys)
    replay = _submit(second, device, [items[0]])
    assert [r.reason for r in replay.rejections] == [Reason.REPLAYED_SEQUENCE]
    second.close()


def test_credentials_identify_exactly_one_device(platform, provision):
    a, secret_a = provision("power.substation")
    b, _ = provision("power.substation")
    body = orjson.dumps(_substation(1, platform.clock.now()))
    assert platform.registry.by_token(secret_a) == a
    assert platform.registry.by_signature(a.id, body, sign(secret_a, body)) == a
    with pytest.raises(AuthError) as info:
        platform.registry.by_signature(b.id, body, sign(secret_a, body))
    assert info.value.reason is Reason.BAD_SIGNATURE
    with pytest.raises(AuthError) as info:
        platform.registry.by_token("not-a-token")
    assert info.value.reason is Reason.BAD_CREDENTIALS
    platform.registry.revoke(a.id, platform.clock.now())
    with pytest.raises(AuthError) as info:
        platform.registry.by_token(secret_a)
    assert info.value.reason is Reason.REVOKED_DEVICE
    with pytest.raises(AuthError) as info:
        platform.registry.by_broker_identity("ghost")
    assert info.value.reason is Reason.UNKNOWN_DEVICE


def test_device_secrets_are_sealed_at_rest(platform, provision):
    _, secret = provision("water.tank")
    db = platform.settings.data_dir / "civicguard.db"
    assert secret.encode() not in db.read_bytes()


def test_unauthenticated_refusals_keep_no_content(platform):
    platform.ingest.refuse(
        Reason.BAD_CREDENTIALS, "no token", Transport.HTTP, b'{"plate":"XYZ987"}'
    )
    _drain(platform)
    (letter,) = platform.store.dead_letters.query()
    assert "XYZ987" not in letter["payload"]
    assert letter["reason"] == "bad_credentials"


def test_a_failed_publish_lets_the_retry_through(platform, provision):
    device, _ = provision("power.substation")
    now = platform.clock.now()
    items = [_substation(i, now + i) for i in range(1, 4)]
    original = platform.log.publish

    def unavailable(events):
        raise TimeoutError("event log unreachable")

    platform.log.publish = unavailable
    with pytest.raises(TimeoutError):
        _submit(platform, device, items)
    platform.log.publish = original
    retry = _submit(platform, device, items)
    assert (retry.accepted, retry.duplicates, retry.rejections) == (3, 0, [])

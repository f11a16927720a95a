"""Pseudonym keys: one per stream and period, destroyed once their data passed retention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from sqlalchemy import select

from civicguard.clock import ManualClock
from civicguard.ingest.model import ReadingBatch, Reason, Transport
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.privacy.pseudonyms import (
    KeyExpiredError,
    MemoryKeyJournal,
    Pseudonymiser,
    key_name,
)
from civicguard.settings import Settings
from civicguard.store import schema

DAY = 86_400.0
#: Keys that are not retention's: they must survive every sweep. (A subject key is retention's
#: once nothing of its subject is left; the test gives one a consent in force.)
OTHER_KEYS = ("sign/consent-receipts", "seal/device-secrets", "pseudonymous")


def anpr(seq: int, ts: float, plate: str = "AGS-123-A") -> bytes:
    values = {"plate": plate, "lane": 1, "speed": 40.0, "vehicle_class": "car"}
    return orjson.dumps([{"seq": seq, "ts": ts, "values": values}])


def safety_batch(ts: float) -> ReadingBatch:
    """A citizen.safety_app reading as decoded (consent is another stage's concern)."""
    return ReadingBatch(
        stream="citizen.safety_app",
        fields=("lat", "lon", "accuracy"),
        device_ids=("app",),
        seq=np.array([1], dtype=np.int64),
        ts=np.array([ts]),
        received_at=np.array([ts]),
        values=np.array([[21.88, -102.29, 10.0]]),
        text={"citizen": ["CURP-XYZ-123"]},
        cells=("",),
        transport=Transport.HTTP,
    )


def pseudonym_keys(platform: Platform) -> set[str]:
    return {n for n in platform.keys.names() if n.startswith("pseudonym/")}


def key_events(platform: Platform) -> list[dict]:
    with platform.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(schema.key_events)).mappings()]


def test_each_stream_key_dies_when_its_data_passes_retention(
    platform: Platform, provision, clock: ManualClock
) -> None:
    for name in OTHER_KEYS:
        platform.keys.get_or_create(name)
    platform.citizens.consent.grant("cit-0042", "citizen.safety_app")
    (subject_key,) = (n for n in platform.keys.names() if n.startswith("subject/"))
    camera, _ = provision("traffic.anpr")
    now = clock.now()
    start = now - now % DAY
    end = start + DAY
    assert platform.ingest.submit(camera, anpr(1, now), Transport.HTTP).accepted == 1
    platform.ingest.gateway.protect(safety_batch(now), "cell")
    anpr_key = key_name("traffic.anpr", start, end)
    safety_key = key_name("citizen.safety_app", start, end)
    assert pseudonym_keys(platform) == {anpr_key, safety_key}
    created = {e["name"] for e in key_events(platform) if e["event"] == "created"}
    assert created == {anpr_key, safety_key}
    key_bytes = {platform.keys.get(anpr_key), platform.keys.get(safety_key)}

    # One second before the safety app's 2 days after the period's end: nothing goes.
    clock.set(end + 2 * DAY - 1)
    assert platform.retention.run().removed["pseudonym_keys"] == 0
    clock.set(end + 2 * DAY)
    assert platform.retention.run().removed["pseudonym_keys"] == 1
    assert pseudonym_keys(platform) == {anpr_key}
    clock.set(end + 30 * DAY - 1)
    assert platform.retention.run().removed["pseudonym_keys"] == 0
    clock.set(end + 30 * DAY)
    assert platform.retention.run().removed["pseudonym_keys"] == 1
    assert pseudonym_keys(platform) == set()
    for name in (*OTHER_KEYS, subject_key):
        assert platform.keys.get(name) is not None, name

    destroyed = {e["name"]: e for e in key_events(platform) if e["event"] == "destroyed"}
    assert set(destroyed) == {anpr_key, safety_key}
    assert destroyed[safety_key]["at"] == end + 2 * DAY
    assert "citizen.safety_app" in destroyed[safety_key]["reason"]
    # The record names keys, never holds them.
    dump = repr(key_events(platform))
    for key in key_bytes:
        assert key is not None
        assert key.hex() not in dump and repr(key) not in dump


def test_a_destroyed_key_is_never_created_again(
    platform: Platform, provision, clock: ManualClock
) -> None:
    camera, _ = provision("traffic.anpr")
    then = clock.now()
    platform.ingest.submit(camera, anpr(1, then), Transport.HTTP)
    clock.advance(40 * DAY)
    platform.retention.run()
    pseudonymiser = platform.ingest.gateway.pseudonymiser
    with pytest.raises(KeyExpiredError):
        pseudonymiser.pseudonym("traffic.anpr", "licence_plate", "AGS1", then, now=clock.now())
    assert pseudonym_keys(platform) == set()


def test_a_recorded_destruction_is_final_even_inside_the_period() -> None:
    """A key destroyed out of schedule (by an operator, a KMS) stays destroyed."""
    keys, journal = MemoryKeyStore(), MemoryKeyJournal()
    p = Pseudonymiser(keys, DAY, {"traffic.anpr": 30 * DAY}, journal)
    p.pseudonym("traffic.anpr", "licence_plate", "AGS1", 10.0, now=10.0)
    (name,) = keys.names()
    assert set(journal.get(name)) == {"created"}
    keys.destroy(name)
    journal.record(name, "destroyed", 20.0, "by hand")
    p.forget(name)
    with pytest.raises(KeyExpiredError):
        p.pseudonym("traffic.anpr", "licence_plate", "AGS1", 30.0, now=30.0)
    assert keys.names() == []


def test_old_shared_keys_wait_for_the_longest_pseudonymising_retention(
    platform: Platform, clock: ManualClock
) -> None:
    period = int(clock.now() // DAY)
    platform.keys.get_or_create(f"pseudonym/{period}")  # named as before per-stream keys
    end = (period + 1) * DAY
    clock.set(end + 30 * DAY - 1)  # the ANPR's 30 days are the longest
    assert platform.retention.run().removed["pseudonym_keys"] == 0
    clock.set(end + 30 * DAY)
    assert platform.retention.run().removed["pseudonym_keys"] == 1


def test_a_reading_older_than_its_streams_retention_is_refused(tmp_path: Path) -> None:
    """With ingest accepting 40-day-old readings, a 31-day-old plate read is refused as too
    old (the ANPR keeps 30 days) and no key is made for its period."""
    doc = yaml.safe_load(_demo_yaml())
    doc["ingest"]["max_age"] = "40d"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc))
    clock = ManualClock(1_790_000_000.0)
    settings = Settings(data_dir=tmp_path / "data", catalog=str(path))
    platform = Platform.build(settings, clock=clock, keys=MemoryKeyStore())
    try:
        from civicguard.ingest.model import Device

        camera = Device(id="cam-1", stream="traffic.anpr", lat=21.88, lon=-102.29)
        platform.registry.provision(camera, clock.now())
        old = platform.ingest.submit(camera, anpr(1, clock.now() - 31 * DAY), Transport.HTTP)
        assert old.accepted == 0
        (refusal,) = old.rejections
        assert refusal.reason is Reason.TIMESTAMP_TOO_OLD
        assert "retention" in refusal.detail
        # The dead letter's plate is pseudonymised under today's key; the old period has none.
        old_period = clock.now() - 31 * DAY
        old_key = key_name("traffic.anpr", old_period - old_period % DAY, 0)
        assert not any(k.startswith(old_key.rsplit("-", 1)[0]) for k in pseudonym_keys(platform))
        assert len(pseudonym_keys(platform)) == 1
        young = platform.ingest.submit(camera, anpr(2, clock.now() - 29 * DAY), Transport.HTTP)
        assert young.accepted == 1
    finally:
        platform.close()


def _demo_yaml() -> str:
    from importlib import resources

    return resources.files("civicguard.catalog").joinpath("demo_city.yaml").read_text("utf-8")

"""The privacy gateway applies the catalog's treatments; no raw identifier gets past it."""

from __future__ import annotations

import logging
from pathlib import Path

import h3
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from civicguard.bus import codec
from civicguard.ingest.model import Transport
from civicguard.privacy.gateway import Pseudonymiser, normalise_identifier
from civicguard.privacy.keys import FileKeyStore, MemoryKeyStore

PLATES = ["AGS-123-A", "XKZ9876", "B MX 4421"]
MACS = ["3c:22:fb:10:aa:01", "F0-18-98-5E-77-C2", "a4:83:e7:00:11:22"]


def _anpr(seq: int, ts: float, plate: str) -> dict:
    return {
        "seq": seq,
        "ts": ts,
        "values": {"plate": plate, "lane": 1, "speed": 38.5, "vehicle_class": "car"},
    }


def _wifi(seq: int, ts: float, macs: list[str]) -> dict:
    return {
        "seq": seq,
        "ts": ts,
        "values": {"macs": macs, "devices": len(macs), "rssi_mean": -61.0},
    }


RETENTION = {"traffic.anpr": 30 * 86_400.0, "presence.wifi": 7 * 86_400.0}


def _pseudonymiser(rotation_s: float = 86_400) -> Pseudonymiser:
    return Pseudonymiser(MemoryKeyStore(), rotation_s, RETENTION)


def test_pseudonyms_link_within_a_period_and_never_across() -> None:
    p = _pseudonymiser()
    day = 1_790_000_000.0 - (1_790_000_000.0 % 86_400)

    def ps(plate: str, ts: float, stream: str = "traffic.anpr") -> str:
        return p.pseudonym(stream, "licence_plate", plate, ts, now=day)

    same_day = [ps("AGS 123 A", day + h * 3600) for h in (0, 5, 23)]
    assert len(set(same_day)) == 1
    assert ps("ags-123-a", day) == same_day[0]
    assert ps("AGS 123 A", day + 86_400) != same_day[0]
    assert ps("AGS 123 B", day) != same_day[0]
    # Each stream has keys of its own: the same plate does not link across streams.
    assert ps("AGS 123 A", day, stream="presence.wifi") != same_day[0]


def test_pseudonyms_depend_on_the_key() -> None:
    a = _pseudonymiser().pseudonym("presence.wifi", "mac_address", MACS[0], 0.0, now=0.0)
    b = _pseudonymiser().pseudonym("presence.wifi", "mac_address", MACS[0], 0.0, now=0.0)
    assert a != b


@settings(max_examples=200)
@given(
    st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=4, max_size=8), st.floats(0, 4e9)
)
def test_pseudonym_never_contains_the_identifier(plate: str, ts: float) -> None:
    p = _pseudonymiser(3600)
    out = p.pseudonym("traffic.anpr", "licence_plate", plate, ts, now=ts)
    assert plate not in out.upper().removeprefix("PS_")
    assert out.startswith("ps_") and len(out) == 35


@given(
    st.lists(st.integers(0, 255), min_size=6, max_size=6),
    st.sampled_from([":", "-"]),
    st.booleans(),
)
def test_mac_spellings_normalise_to_one(octets: list[int], sep: str, upper: bool) -> None:
    text = sep.join(f"{o:02x}" for o in octets)
    text = text.upper() if upper else text
    assert normalise_identifier("mac_address", text) == ":".join(f"{o:02x}" for o in octets)


def test_file_key_store_is_encrypted_at_rest_and_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CIVICGUARD_MASTER_KEY", raising=False)
    store = FileKeyStore.in_dir(tmp_path)
    key = store.get_or_create("pseudonym/1")
    assert (tmp_path / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "keys.json").stat().st_mode & 0o777 == 0o600
    assert key not in (tmp_path / "keys" / "keys.json").read_bytes()
    again = FileKeyStore.in_dir(tmp_path)
    assert again.get("pseudonym/1") == key
    assert again.destroy("pseudonym/1")
    assert FileKeyStore.in_dir(tmp_path).get("pseudonym/1") is None


def test_treatments_and_place_follow_the_catalog(platform, provision) -> None:
    camera, _ = provision("traffic.anpr")
    counter, _ = provision("presence.wifi")
    now = platform.clock.now()
    r1 = platform.ingest.submit(camera, orjson.dumps([_anpr(1, now, PLATES[0])]), Transport.HTTP)
    r2 = platform.ingest.submit(counter, orjson.dumps([_wifi(1, now, MACS)]), Transport.HTTP)
    (anpr,) = r1.batches
    (wifi,) = r2.batches
    assert anpr.text["plate"][0].startswith("ps_")
    # The catalog counts MAC addresses: only their number leaves the gateway.
    assert "macs" not in wifi.text
    assert wifi.column("macs")[0] == len(MACS)
    assert "rssi_mean" not in wifi.fields  # dropped by the catalog
    resolution = platform.catalog.stream("traffic.anpr").h3_resolution
    assert anpr.cells[0] == h3.latlng_to_cell(camera.lat, camera.lon, resolution)


def test_canary_identifiers_reach_no_store_log_or_event(platform, provision, caplog) -> None:
    """Invariant 1: raw plates and MACs never reach the store, the event log or the logs."""
    caplog.set_level(logging.DEBUG)
    camera, _ = provision("traffic.anpr")
    counter, _ = provision("presence.wifi")
    now = platform.clock.now()
    events = []
    original_publish = platform.log.publish

    def tap(batch):
        events.extend(codec.encode(e) for e in batch)
        original_publish(batch)

    platform.log.publish = tap  # type: ignore[method-assign]
    readings = [_anpr(i, now + i, PLATES[i % 3]) for i in range(1, 40)]
    platform.ingest.submit(camera, orjson.dumps(readings), Transport.HTTP)
    # The same seq with other content is a replay (the same content would be a silent retry).
    replayed = _anpr(1, now + 1, PLATES[2])
    assert replayed != readings[0]
    platform.ingest.submit(camera, orjson.dumps([replayed]), Transport.HTTP)
    bad = _anpr(99, now, PLATES[1]) | {"extra": 1}
    platform.ingest.submit(camera, orjson.dumps(bad), Transport.HTTP)  # refused, kept redacted
    platform.ingest.submit(camera, b'{"plate": "' + PLATES[2].encode() + b'", ', Transport.MQTT)
    platform.ingest.submit(counter, orjson.dumps([_wifi(1, now, MACS)]), Transport.HTTP)
    platform.ingest.submit(counter, orjson.dumps([_wifi(2, now, [*MACS, 7])]), Transport.HTTP)
    while platform.processor.run_once(timeout=0):
        pass
    assert platform.store.readings.count() == 40
    assert len(platform.store.dead_letters.query()) == 4
    platform.store.engine.dispose()
    blobs = [p.read_bytes() for p in platform.settings.data_dir.rglob("*") if p.is_file()]
    blobs += events
    blobs.append(caplog.text.encode())
    spellings = set()
    for raw in [*PLATES, *MACS]:
        spellings |= {raw, raw.upper(), raw.lower(), normalise_identifier("licence_plate", raw)}
        spellings.add(normalise_identifier("mac_address", raw))
    for blob in blobs:
        for spelling in spellings:
            assert spelling.encode() not in blob, spelling

"""Invariant 1 through every door, as an operator runs civicguard: no raw identifier is kept.

Canary identifiers (licence plates, MAC addresses, citizen ids, e-mail addresses, phone numbers)
go into every field and every envelope key of every stream of the catalog, good readings and
bad, over HTTP and MQTT to a running ``civicguard serve`` (its MQTT receiver in its own process,
the broker with persistence on), through ``civicguard replay`` (JSON lines and CSV), and through
the citizen app's consent and report endpoints. Then the database, a backup taken with
``civicguard backup create``, every file of the data directory, the broker's persistence file
and log, and everything the processes wrote on stdout and stderr (serve logs no access lines;
whatever it prints is scanned) are searched for every canary, raw and in common encodings.

The payloads are built from the catalog's stream list, so a new stream is covered at once; the
expected outcome (nothing found) is written here.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import FieldType, Stream
from civicguard.clock import SystemClock
from civicguard.ingest.model import Device
from civicguard.ingest.registry import sign
from civicguard.platform import Platform
from civicguard.privacy.pseudonyms import normalise_identifier
from civicguard.settings import Settings
from tests.ingest.mosquitto import mosquitto
from tests.ingest.test_mqtt import CLI, publish_anonymously, serving

#: Identifiers that must never be kept anywhere, by kind.
CANARIES = {
    "licence_plate": ["CNRY-4471", "QZX 90 AB"],
    "mac_address": ["C4:0A:7E:9A:00:01", "c4-0a-7e-9a-00-02"],
    "citizen_id": ["canary-citizen-4711", "CURP-ÑÁ-880315"],
    "email": ["canary.person@example.org"],
    "phone": ["+52 449 876 5432"],
}
ALL = [value for values in CANARIES.values() for value in values]
#: A citizen report's text; the scrubber must take each of these out of it.
REPORT = "Broken lamp; call me at +52 449 123 4567 or write to canary.reporter@example.org"
REPORT_CANARIES = ["+52 449 123 4567", "canary.reporter@example.org"]
SITE = {"lat": 21.8818, "lon": -102.2916}


def spellings(value: str) -> set[bytes]:
    """``value`` as it could be written down: raw, cased, without separators, normalised,
    JSON-escaped, URL-quoted, base64 and UTF-16."""
    compact = "".join(c for c in value if c.isalnum())
    texts = {value, value.lower(), value.upper(), compact, compact.lower(), compact.upper()}
    for kind in ("licence_plate", "mac_address", "citizen_id"):
        texts.add(normalise_identifier(kind, value))
    out: set[bytes] = set()
    for text in texts:
        out |= {
            text.encode(),
            json.dumps(text)[1:-1].encode(),  # ASCII escapes (\u00d1)
            urllib.parse.quote(text).encode(),
            urllib.parse.quote_plus(text).encode(),
            base64.b64encode(text.encode()),
            text.encode("utf-16-le"),
        }
    return out


# -- the payloads, from the catalog ---------------------------------------------------------------


def _device_id(stream: Stream) -> str:
    return "cnry-" + stream.name.replace(".", "-")


def _good_values(stream: Stream, identifier: str) -> dict[str, Any]:
    """A valid reading's values, the identifier in every field that takes one."""
    out: dict[str, Any] = {}
    for spec in stream.fields:
        if spec.type is FieldType.BOOLEAN:
            out[spec.name] = True
        elif spec.type is FieldType.STRING_LIST:
            out[spec.name] = [identifier[: spec.max_length]]
        elif spec.type is FieldType.STRING:
            out[spec.name] = spec.choices[0] if spec.choices else identifier[: spec.max_length]
        elif stream.location and spec.name in stream.location:
            out[spec.name] = SITE[spec.name]
        else:
            low, high = spec.range or (0.0, 1.0)
            out[spec.name] = int(low) + 1 if spec.type is FieldType.INTEGER else (low + high) / 2
    return out


class Readings:
    """Readings with canaries, numbered per device so that each one is new."""

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}

    def seq(self, device_id: str) -> int:
        self._seq[device_id] = self._seq.get(device_id, 0) + 1
        return self._seq[device_id]

    def of(self, stream: Stream, canary: str, now: float) -> list[dict[str, Any]]:
        """One good reading, then the canary in each field and each envelope key in turn."""
        device = _device_id(stream)
        good = _good_values(stream, canary)

        def reading(**over: Any) -> dict[str, Any]:
            return {"seq": self.seq(device), "ts": now, "values": good} | over

        out = [reading()]
        for i, spec in enumerate(stream.fields):
            wrongs: list[Any] = [canary, [canary]] + ([{canary: canary}] if i == 0 else [])
            out += [reading(values=good | {spec.name: wrong}) for wrong in wrongs]
        out.append(reading(values=good | {canary: 1}))
        for key in ("device", "stream", "seq", "ts", "values", "location", "position"):
            out.append(reading(**{key: canary}))
        out.append(reading(**{canary: canary}))
        out.append(reading(position={"lat": canary, "lon": SITE["lon"]}))
        return out


def _chunks(items: list[Any], size: int = 40) -> Iterator[list[Any]]:
    for at in range(0, len(items), size):
        yield items[at : at + size]


# -- the doors ------------------------------------------------------------------------------------


def _over_http(base: str, secrets: dict[str, str], readings: Readings) -> int:
    """Every stream's canary readings, then odd bodies and headers; the refusals counted."""
    refused = 0
    now = time.time()
    with httpx.Client(base_url=base, timeout=30) as http:
        for stream in demo_catalog().streams:
            auth = {"Authorization": f"Bearer {secrets[_device_id(stream)]}"}
            for canary in ALL:
                for chunk in _chunks(readings.of(stream, canary, now)):
                    answer = http.post("/api/v1/ingest", headers=auth, content=orjson.dumps(chunk))
                    assert answer.status_code in (202, 422), answer.text
                    refused += len(answer.json()["rejected"])
            for canary in ALL:
                broken = b'{"seq": 1, "values": {"x": "' + canary.encode() + b'"'
                answer = http.post("/api/v1/ingest", headers=auth, content=broken)
                assert answer.status_code == 400, answer.text
                if canary.isascii():  # an HTTP header holds ASCII
                    stranger = {"X-Device-Id": canary.replace(" ", "-"), "X-Signature": "00" * 32}
                    answer = http.post("/api/v1/ingest", headers=stranger, content=broken)
                    assert answer.status_code == 401, answer.text
                    unsigned = {"X-Device-Id": stranger["X-Device-Id"]}
                    answer = http.post("/api/v1/ingest", headers=unsigned, content=broken)
                    assert answer.status_code == 401, answer.text
                    huge = b"[" + b" " * 300_000 + b"]"
                    answer = http.post("/api/v1/ingest", headers=stranger, content=huge)
                    assert answer.status_code == 413, answer.text
        app = {"Authorization": f"Bearer {secrets['cnry-citizen-safety_app']}"}
        for citizen in CANARIES["citizen_id"][:1]:
            granted = http.post(
                "/api/v1/citizens/consent/grant", headers=app, json={"citizen": citizen}
            )
            assert granted.status_code == 201, granted.text
        report = {"text": REPORT, "category": "lighting", "citizen": CANARIES["citizen_id"][0]}
        filed = http.post("/api/v1/citizens/reports", headers=app, json=report)
        assert filed.status_code == 201, filed.text
        anonymous = http.post(
            "/api/v1/citizens/reports", json={"text": REPORT, "category": "lighting"}
        )
        assert anonymous.status_code == 201, anonymous.text
    return refused


def _over_mqtt(broker: Any, secrets: dict[str, str], readings: Readings) -> None:
    """Signed batches per stream, the same on the untrusted /readings topic, forged and broken
    signed messages, and canaries as the topic's device."""
    now = time.time()
    for stream in demo_catalog().streams:
        device = _device_id(stream)
        signed, plain = [], []
        for canary in ALL:
            for chunk in _chunks(readings.of(stream, canary, now)):
                body = orjson.dumps(chunk)
                signed.append(
                    orjson.dumps({"sig": sign(secrets[device], body), "body": body.decode()})
                )
                plain.append(body)
            forged = orjson.dumps(
                {"sig": "00" * 32, "body": orjson.dumps([{"x": canary}]).decode()}
            )
            signed += [forged, b'{"sig": "' + canary.encode() + b'", "body": ']
        publish_anonymously(broker, f"civicguard/{device}/signed", signed)
        publish_anonymously(broker, f"civicguard/{device}/readings", plain)
    for canary in ALL:
        topic_id = canary.replace("+", "").replace(" ", "-")
        body = orjson.dumps({"seq": 1, "ts": now, "values": {"x": canary}})
        publish_anonymously(
            broker,
            f"civicguard/{topic_id}/signed",
            [orjson.dumps({"sig": "ab", "body": body.decode()})],
        )
        publish_anonymously(broker, f"civicguard/{topic_id}/telemetry", [body])


def _replay_files(directory: Path, readings: Readings) -> list[Path]:
    """A JSON-lines file (canaries everywhere, and as the device) and a CSV file."""
    now = time.time()
    lines = []
    for stream in demo_catalog().streams:
        for canary in ALL:
            lines += [
                orjson.dumps({"device": _device_id(stream)} | r)
                for r in readings.of(stream, canary, now)
            ]
    for canary in ALL:
        lines.append(orjson.dumps({"device": canary, "seq": 1, "ts": now, "values": {}}))
        lines.append(
            b'{"device": "cnry-traffic-anpr", "seq": 9, "values": {"plate": "' + canary.encode()
        )
    jsonl = directory / "canaries.jsonl"
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    rows = ["device,seq,ts,plate,lane,speed,vehicle_class,voltage"]
    for i, canary in enumerate(ALL, start=1):
        cell = canary.replace(",", " ")
        anpr, substation = "cnry-traffic-anpr", "cnry-power-substation"
        rows += [
            f"{anpr},{readings.seq(anpr)},{now},{cell},1,30,car,",
            f"{anpr},{readings.seq(anpr)},{now},AB{i},{cell},30,car,",
            f"{anpr},{readings.seq(anpr)},{now},AB{i},1,30,{cell},",
            f"{anpr},{cell},{now},AB{i},1,30,car,",
            f"{anpr},{readings.seq(anpr)},{cell},AB{i},1,30,car,",
            f"{substation},{readings.seq(substation)},{now},,,,,{cell}",
            f"{cell},1,{now},AB{i},1,30,car,",
        ]
    csv = directory / "canaries.csv"
    csv.write_text("\n".join(rows) + "\n")
    return [jsonl, csv]


def _run(data_dir: Path, logs: Path, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """A CLI command with its stdout and stderr kept for the scan."""
    done = subprocess.run(
        [str(CLI), *args, "--data-dir", str(data_dir)],
        env=os.environ | {"COLUMNS": "200"},
        capture_output=True,
        timeout=120,
        check=False,
    )
    (logs / f"{name}.out").write_bytes(done.stdout)
    (logs / f"{name}.err").write_bytes(done.stderr)
    return done


def _rows(data_dir: Path) -> tuple[int, dict[str, int]]:
    """Readings stored, and dead letters by reason, read from the SQLite file directly."""
    path = data_dir / "civicguard.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        readings = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        reasons = dict(db.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason"))
    return int(readings), {str(k): int(v) for k, v in reasons.items()}


def _settled(data_dir: Path) -> tuple[int, dict[str, int]]:
    """The database's counts once they stopped moving for a second."""
    last, since = None, time.monotonic()
    deadline = since + 60
    while time.monotonic() < deadline:
        now = _rows(data_dir)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return now
        time.sleep(0.1)
    pytest.fail(f"the database did not settle: {last}")


@pytest.mark.mqtt
def test_no_canary_survives_anywhere(tmp_path: Path) -> None:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    catalog = demo_catalog()
    setup = Platform.build(Settings(data_dir=data_dir), clock=SystemClock())
    try:
        devices = [Device(id=_device_id(s), stream=s.name, **SITE) for s in catalog.streams]
        secrets = setup.registry.provision_many(devices, setup.clock.now())
    finally:
        setup.close()
    readings = Readings()
    with ExitStack() as stack:
        broker = stack.enter_context(mosquitto(tmp_path / "broker", persistence=True))
        env = os.environ | {
            "CIVICGUARD_MQTT_HOST": broker.host,
            "CIVICGUARD_MQTT_PORT": str(broker.port),
            "PYTHONWARNINGS": "default",
        }
        with serving(data_dir, env, logs / "serve.err") as serve:
            refused_http = _over_http(f"http://127.0.0.1:{serve.port}", secrets, readings)  # type: ignore[attr-defined]
            _over_mqtt(broker, secrets, readings)
            stored, reasons = _settled(data_dir)
        for path in _replay_files(tmp_path, readings):
            done = _run(data_dir, logs, f"replay-{path.suffix[1:]}", "replay", str(path))
            assert done.returncode == 1, done.stderr  # 1: some lines were refused
        backup = tmp_path / "backup" / "civicguard.backup"
        done = _run(data_dir, logs, "backup", "backup", "create", str(backup))
        assert done.returncode == 0, done.stderr
        after_replay, reasons_after = _rows(data_dir)
    # The broker has stopped: its persistence file is written.
    store = tmp_path / "broker" / "store" / "mosquitto.db"
    assert store.exists()

    # The doors were really walked through: good readings stored, every kind of refusal kept.
    assert refused_http > 2000
    # A good reading per stream and canary over HTTP and over MQTT (the app's need consent).
    assert stored >= 2 * (len(catalog.streams) - 1) * len(ALL)
    for reason in ("wrong_type", "unknown_field", "device_mismatch", "not_allowed_value",
                   "malformed_json", "unknown_device", "bad_credentials", "bad_signature",
                   "no_consent"):  # fmt: skip
        assert reasons.get(reason, 0) > 0, (reason, reasons)
    assert after_replay > stored
    assert sum(reasons_after.values()) > sum(reasons.values())

    places = [p for p in (data_dir, tmp_path / "broker", logs, backup.parent) if p.exists()]
    blobs = {str(p): p.read_bytes() for place in places for p in place.rglob("*") if p.is_file()}
    assert str(backup) in blobs and str(store) in blobs and str(logs / "serve.err") in blobs
    leaks = [
        (name, value)
        for value in ALL + REPORT_CANARIES
        for spelling in spellings(value)
        for name, blob in blobs.items()
        if spelling in blob
    ]
    assert leaks == []


def test_no_canary_travels_on_the_event_log(platform: Platform, tmp_path: Path) -> None:
    """The events ingest publishes (as they would travel on JetStream, or lie in a durable
    local log) hold no canary: every stream's canary readings over HTTP and MQTT's routing,
    refusals of unknown devices and untrusted topics included."""
    from civicguard.bus import codec
    from civicguard.ingest.model import Transport
    from civicguard.ingest.mqtt import MqttIngest

    events: list[bytes] = []
    publish = platform.log.publish

    def tap(batch: Any) -> None:
        events.extend(codec.encode(e) for e in batch)
        publish(batch)

    platform.log.publish = tap  # type: ignore[method-assign]
    catalog = platform.catalog
    devices = [Device(id=_device_id(s), stream=s.name, **SITE) for s in catalog.streams]
    secrets = platform.registry.provision_many(devices, platform.clock.now())
    adapter = MqttIngest(platform.ingest, platform.registry, "127.0.0.1", 1)
    readings = Readings()
    now = platform.clock.now()
    for device, stream in zip(devices, catalog.streams, strict=True):
        for canary in ALL:
            body = orjson.dumps(readings.of(stream, canary, now))
            platform.ingest.submit(device, body, Transport.HTTP)
            signed = {"sig": sign(secrets[device.id], body), "body": body.decode()}
            topic_id = canary.replace("+", "").replace(" ", "-")
            adapter.handle(
                [
                    (f"civicguard/{device.id}/signed", orjson.dumps(signed)),
                    (f"civicguard/{device.id}/readings", body),
                    (f"civicguard/{topic_id}/signed", orjson.dumps(signed)),
                    (f"civicguard/{topic_id}/{canary}", body),
                ]
            )
    assert len(events) > 1000
    leaks = [
        (i, value)
        for value in ALL
        for spelling in spellings(value)
        for i, blob in enumerate(events)
        if spelling in blob
    ]
    assert leaks == []

"""The MQTT adapter against a real Mosquitto with per-device passwords and an ACL."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from civicguard.ingest.model import Transport
from civicguard.ingest.mqtt import MqttIngest
from civicguard.ingest.registry import sign
from civicguard.platform import Platform
from tests.ingest.conftest import GATEWAY_PASSWORD, GATEWAY_USER, MqttWorld

RAW_PLATE = "XKZ-4471"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextmanager
def device_client(world: MqttWorld, username: str, password: str) -> Iterator[mqtt.Client]:
    """A connected MQTT client logged in as ``username``."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-{username}-{uuid.uuid4().hex[:8]}"
    )
    client.username_pw_set(username, password)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(world.broker.host, world.broker.port)
    client.loop_start()
    try:
        assert connected.wait(5), f"{username} could not connect"
        assert client.is_connected(), f"broker refused {username}"
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    """Publish at QoS 1 and wait for the broker's acknowledgement."""
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(timeout=5)
    assert info.is_published(), f"broker did not acknowledge {topic}"


def substation(seq: int, ts: float, voltage: float = 11.0) -> bytes:
    """A substation reading as a device sends it."""
    return orjson.dumps(
        {"seq": seq, "ts": ts, "values": {"voltage": voltage, "frequency": 50.0, "load": 12.5}}
    )


def dead_letters(platform: Platform) -> dict[str, int]:
    """Dead-letter counts by reason."""
    return platform.store.dead_letters.count_by_reason()


def stored(platform: Platform, device_id: str) -> list[dict[str, Any]]:
    """The readings stored for ``device_id``."""
    return platform.store.readings.query(device_id=device_id, limit=1000)


@pytest.mark.mqtt
def test_anpr_reads_are_stored_pseudonymised_and_the_raw_plate_never_lands(
    mqtt_world: MqttWorld, tmp_path: Path
) -> None:
    world = mqtt_world
    now = world.clock.now()
    batch = [
        {
            "seq": 1,
            "ts": now,
            "values": {"plate": RAW_PLATE, "lane": 2, "speed": 41.0, "vehicle_class": "car"},
        },
        {
            "seq": 2,
            "ts": now + 1,
            "values": {"plate": "JHP 9920", "lane": 1, "speed": 38.5, "vehicle_class": "van"},
        },
    ]
    with device_client(world, "anpr-01", world.secrets["anpr-01"]) as client:
        publish(client, "civicguard/anpr-01/readings", orjson.dumps(batch))
    wait_for(lambda: len(stored(world.platform, "anpr-01")) == 2, "two ANPR reads stored")

    rows = stored(world.platform, "anpr-01")
    plates = {row["values"]["plate"] for row in rows}
    assert all(p.startswith("ps_") for p in plates)
    assert len(plates) == 2
    assert {row["values"]["vehicle_class"] for row in rows} == {"car", "van"}
    assert world.adapter.received == 1
    world.platform.close()
    data_dir = Path(world.platform.settings.data_dir)
    for path in data_dir.glob("civicguard.db*"):
        content = path.read_bytes()
        for raw in (RAW_PLATE, "XKZ4471", "JHP 9920", "JHP9920"):
            assert raw.encode() not in content, f"raw plate {raw!r} found in {path.name}"


@pytest.mark.mqtt
def test_a_device_cannot_publish_on_another_devices_topic(mqtt_world: MqttWorld) -> None:
    world = mqtt_world
    now = world.clock.now()
    with device_client(world, "sub-01", world.secrets["sub-01"]) as client:
        # The ACL lets sub-01 write only civicguard/sub-01/...; the broker drops this one
        # (it may acknowledge it or cut the connection: either way nothing is delivered).
        info = client.publish("civicguard/sub-02/readings", substation(1, now, voltage=0.5), qos=1)
        with contextlib.suppress(RuntimeError):
            info.wait_for_publish(timeout=5)
    with device_client(world, "sub-01", world.secrets["sub-01"]) as client:
        publish(client, "civicguard/sub-01/readings", substation(1, now))
    wait_for(lambda: len(stored(world.platform, "sub-01")) == 1, "sub-01's own reading")
    world.adapter.wait_idle()
    assert stored(world.platform, "sub-02") == []
    # Only the device's own message was ever delivered to the platform.
    assert world.adapter.received == 1


@pytest.mark.mqtt
def test_signed_payloads_are_verified_against_the_named_devices_key(mqtt_world: MqttWorld) -> None:
    world = mqtt_world
    now = world.clock.now()
    forged = substation(7, now, voltage=0.1)
    genuine = substation(8, now)
    with device_client(world, GATEWAY_USER, GATEWAY_PASSWORD) as gateway:
        # Signed with sub-01's key but sent as sub-02: a forgery.
        publish(
            gateway,
            "civicguard/sub-02/signed",
            orjson.dumps({"sig": sign(world.secrets["sub-01"], forged), "body": forged.decode()}),
        )
        publish(
            gateway,
            "civicguard/sub-02/signed",
            orjson.dumps({"sig": sign(world.secrets["sub-02"], genuine), "body": genuine.decode()}),
        )
    wait_for(lambda: len(stored(world.platform, "sub-02")) == 1, "the genuine signed reading")
    wait_for(
        lambda: dead_letters(world.platform).get("bad_signature") == 1, "the forgery's dead letter"
    )
    (row,) = stored(world.platform, "sub-02")
    assert row["seq"] == 8
    (letter,) = world.platform.store.dead_letters.query(reason="bad_signature")
    assert letter["device_id"] == "sub-02"
    assert letter["transport"] == Transport.MQTT.value


@pytest.mark.mqtt
def test_bad_messages_become_dead_letters_with_their_reasons(mqtt_world: MqttWorld) -> None:
    world = mqtt_world
    now = world.clock.now()
    with device_client(world, "sub-01", world.secrets["sub-01"]) as client:
        publish(client, "civicguard/sub-01/readings", b'{"seq": 1, "ts": ')
        publish(client, "civicguard/sub-01/readings", substation(2, now, voltage=99.0))
        publish(client, "civicguard/sub-01/readings", substation(3, now))
    ghost = substation(1, now)
    with device_client(world, GATEWAY_USER, GATEWAY_PASSWORD) as gateway:
        publish(
            gateway,
            "civicguard/ghost-9/signed",
            orjson.dumps({"sig": sign("guessed", ghost), "body": ghost.decode()}),
        )
        publish(gateway, "civicguard/sub-01/signed", b"not json at all")
    expected = {"malformed_json": 2, "out_of_range": 1, "unknown_device": 1}
    wait_for(lambda: dead_letters(world.platform) == expected, f"dead letters {expected}")
    assert [r["seq"] for r in stored(world.platform, "sub-01")] == [3]
    (letter,) = world.platform.store.dead_letters.query(reason="out_of_range")
    assert "voltage" in letter["detail"]
    assert letter["seq"] == 2


@pytest.mark.mqtt
def test_a_retransmitted_reading_is_stored_once(mqtt_world: MqttWorld) -> None:
    world = mqtt_world
    now = world.clock.now()
    body = substation(5, now)
    with device_client(world, "sub-01", world.secrets["sub-01"]) as client:
        publish(client, "civicguard/sub-01/readings", body)
        publish(client, "civicguard/sub-01/readings", body)
        publish(client, "civicguard/sub-01/readings", substation(6, now + 1))
    wait_for(lambda: world.adapter.received == 3, "three deliveries")
    wait_for(lambda: len(stored(world.platform, "sub-01")) == 2, "two distinct readings")
    world.adapter.wait_idle()
    assert sorted(r["seq"] for r in stored(world.platform, "sub-01")) == [5, 6]
    assert dead_letters(world.platform) == {}


@pytest.mark.mqtt
def test_a_revoked_device_is_refused_even_while_the_broker_still_knows_it(
    mqtt_world: MqttWorld,
) -> None:
    world = mqtt_world
    now = world.clock.now()
    assert world.platform.registry.revoke("sub-02", now)
    with device_client(world, "sub-02", world.secrets["sub-02"]) as client:
        publish(client, "civicguard/sub-02/readings", substation(1, now))
    wait_for(lambda: dead_letters(world.platform) == {"revoked_device": 1}, "the refusal")
    assert stored(world.platform, "sub-02") == []
    (letter,) = world.platform.store.dead_letters.query(reason="revoked_device")
    # Refused before authentication: the payload is not kept, only its size.
    assert b"voltage" not in letter["payload"].encode()


def test_routing_without_a_broker_refuses_unknown_devices_and_foreign_topics(
    platform: Platform, provisioned: dict[str, str]
) -> None:
    adapter = MqttIngest(platform.ingest, platform.registry, "127.0.0.1", 1, trust_topic=True)
    now = platform.clock.now()
    adapter.handle(
        [
            ("civicguard/nobody/readings", substation(1, now)),
            ("civicguard/sub-01/telemetry", substation(1, now)),
            ("civicguard/sub-01/readings", substation(1, now)),
            ("civicguard/sub-01/readings", substation(2, now)),
        ]
    )
    while platform.processor.run_once(timeout=0.01):
        pass
    assert dead_letters(platform) == {"unknown_device": 1, "unknown_stream": 1}
    assert [r["seq"] for r in stored(platform, "sub-01")] == [2, 1]


@pytest.mark.mqtt
def test_the_receiver_can_run_in_its_own_process(
    platform: Platform, provisioned: dict[str, str], tmp_path: Path
) -> None:
    from civicguard.ingest.mqtt import write_mosquitto_auth
    from tests.ingest.conftest import PLATFORM_PASSWORD, PLATFORM_USER
    from tests.ingest.mosquitto import mosquitto

    passwd, acl = write_mosquitto_auth(
        platform.registry, tmp_path / "broker", PLATFORM_USER, PLATFORM_PASSWORD
    )
    with mosquitto(tmp_path / "broker", password_file=passwd, acl_file=acl) as broker:
        adapter = MqttIngest(
            platform.ingest,
            platform.registry,
            broker.host,
            broker.port,
            PLATFORM_USER,
            PLATFORM_PASSWORD,
            receiver="process",
            trust_topic=True,
        )
        adapter.start()
        try:
            now = platform.clock.now()
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-proc-sub-01")
            client.username_pw_set("sub-01", provisioned["sub-01"])
            client.connect(broker.host, broker.port)
            client.loop_start()
            for seq in range(1, 51):
                client.publish("civicguard/sub-01/readings", substation(seq, now), qos=1)
            client.publish("civicguard/sub-01/readings", b"{broken", qos=1).wait_for_publish(5)
            client.disconnect()
            client.loop_stop()
            wait_for(lambda: adapter.received == 51, "51 messages through the receiver process")
        finally:
            adapter.stop()
    while platform.processor.run_once(timeout=0.01):
        pass
    assert platform.store.readings.count() == 50
    assert dead_letters(platform) == {"malformed_json": 1}


@pytest.mark.mqtt
def test_a_wrong_platform_password_is_reported_at_start(
    platform: Platform, provisioned: dict[str, str], tmp_path: Path
) -> None:
    from civicguard.ingest.mqtt import write_mosquitto_auth
    from tests.ingest.conftest import PLATFORM_PASSWORD, PLATFORM_USER
    from tests.ingest.mosquitto import mosquitto

    passwd, acl = write_mosquitto_auth(
        platform.registry, tmp_path / "broker", PLATFORM_USER, PLATFORM_PASSWORD
    )
    with mosquitto(tmp_path / "broker", password_file=passwd, acl_file=acl) as broker:
        adapter = MqttIngest(
            platform.ingest, platform.registry, broker.host, broker.port, PLATFORM_USER, "wrong"
        )
        with pytest.raises(ConnectionError, match="authori"):
            adapter.start(timeout=5)


# -- acknowledgement only once durable, dead letters, the untrusted /readings topic ---------------


def _adapter(platform: Platform, broker: Any, **options: Any) -> MqttIngest:
    from tests.ingest.conftest import PLATFORM_PASSWORD, PLATFORM_USER

    return MqttIngest(
        platform.ingest,
        platform.registry,
        broker.host,
        broker.port,
        PLATFORM_USER,
        PLATFORM_PASSWORD,
        **options,
    )


@pytest.fixture
def persistent_broker(
    platform: Platform, provisioned: dict[str, str], tmp_path: Path
) -> Iterator[Any]:
    """Mosquitto with per-device logins, an ACL, and persistence on (in tmp)."""
    from civicguard.ingest.mqtt import write_mosquitto_auth
    from tests.ingest.conftest import PLATFORM_PASSWORD, PLATFORM_USER
    from tests.ingest.mosquitto import mosquitto

    passwd, acl = write_mosquitto_auth(
        platform.registry,
        tmp_path / "broker",
        PLATFORM_USER,
        PLATFORM_PASSWORD,
        gateways={GATEWAY_USER: GATEWAY_PASSWORD},
    )
    with mosquitto(
        tmp_path / "broker", password_file=passwd, acl_file=acl, persistence=True
    ) as broker:
        yield broker


def _publish_as(broker: Any, user: str, password: str, topic: str, bodies: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(user, password)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, body, qos=1) for body in bodies]
        for info in infos:
            info.wait_for_publish(timeout=5)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.mqtt
@pytest.mark.parametrize("receiver", ["thread", "process"])
def test_a_message_the_event_log_cannot_take_is_not_acknowledged_and_comes_again(
    platform: Platform, provisioned: dict[str, str], persistent_broker: Any, receiver: str
) -> None:
    """Event log unavailable: nothing is acknowledged; after a restart the broker delivers
    every message again, and each is stored once."""
    now = platform.clock.now()
    real_publish = platform.log.publish
    attempts = []

    def unavailable(events: Any) -> None:
        attempts.append(len(events))
        raise OSError("event log unavailable (injected)")

    platform.log.publish = unavailable  # type: ignore[method-assign]
    first = _adapter(
        platform,
        persistent_broker,
        client_id="civicguard-ack-test",
        receiver=receiver,
        trust_topic=True,
    )
    first.start()
    try:
        bodies = [substation(seq, now) for seq in range(1, 21)]
        _publish_as(
            persistent_broker, "sub-01", provisioned["sub-01"], "civicguard/sub-01/readings", bodies
        )
        wait_for(lambda: first.received == 20, "20 messages delivered")
        wait_for(lambda: len(attempts) >= 2, "ingest tried and failed")
    finally:
        first.stop()
    assert first.failed == 0  # never dead-lettered: nothing is wrong with them
    platform.log.publish = real_publish  # type: ignore[method-assign]
    platform.start_processing()
    second = _adapter(
        platform,
        persistent_broker,
        client_id="civicguard-ack-test",
        receiver=receiver,
        trust_topic=True,
    )
    second.start()
    try:
        wait_for(lambda: platform.store.readings.count() == 20, "all 20 stored after the restart")
        second.wait_idle()
    finally:
        second.stop()
    assert sorted(r["seq"] for r in stored(platform, "sub-01")) == list(range(1, 21))
    assert dead_letters(platform) == {}
    # Stored, so acknowledged: the session holds nothing more for a third start.
    third = _adapter(
        platform, persistent_broker, client_id="civicguard-ack-test", receiver=receiver
    )
    third.start()
    try:
        time.sleep(0.5)
        assert third.received == 0
    finally:
        third.stop()


@pytest.mark.mqtt
def test_a_batch_that_fails_inside_ingest_is_dead_lettered_with_its_reason(
    platform: Platform,
    provisioned: dict[str, str],
    persistent_broker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = platform.clock.now()
    protect = platform.ingest.gateway.protect

    def broken(batch: Any, cell: str) -> Any:
        if batch.device_ids[0] == "sub-02":
            raise ValueError(f"a bug in a treatment (injected) on {RAW_PLATE}")
        return protect(batch, cell)

    platform.ingest.gateway.protect = broken  # type: ignore[method-assign]
    adapter = _adapter(
        platform,
        persistent_broker,
        client_id="civicguard-dl-test",
        receiver="process",
        trust_topic=True,
    )
    adapter.start()
    platform.start_processing()
    try:
        _publish_as(
            persistent_broker,
            "sub-02",
            provisioned["sub-02"],
            "civicguard/sub-02/readings",
            [substation(1, now), substation(2, now)],
        )
        _publish_as(
            persistent_broker,
            "sub-01",
            provisioned["sub-01"],
            "civicguard/sub-01/readings",
            [substation(1, now)],
        )
        wait_for(
            lambda: dead_letters(platform).get("ingest_failed") == 2,
            "two ingest_failed dead letters",
        )
        wait_for(lambda: len(stored(platform, "sub-01")) == 1, "sub-01's reading stored")
    finally:
        adapter.stop()
    letters = platform.store.dead_letters.query(reason="ingest_failed")
    assert {letter["device_id"] for letter in letters} == {"sub-02"}
    assert all("ValueError" in letter["detail"] for letter in letters)
    assert adapter.failed == 2
    assert "failed inside ingest: ValueError" in caplog.text
    assert RAW_PLATE not in caplog.text  # the exception's message may quote what it was given
    # Dead-lettered means handled: acknowledged, so a new session gets nothing again.
    again = _adapter(
        platform,
        persistent_broker,
        client_id="civicguard-dl-test",
        receiver="process",
        trust_topic=True,
    )
    again.start()
    try:
        time.sleep(0.5)
        assert again.received == 0
    finally:
        again.stop()


@pytest.mark.mqtt
def test_the_readings_topic_is_refused_as_unauthenticated_unless_trusted(
    platform: Platform, provisioned: dict[str, str], persistent_broker: Any
) -> None:
    now = platform.clock.now()
    adapter = _adapter(platform, persistent_broker)  # CIVICGUARD_MQTT_TRUST_TOPIC off: the default
    adapter.start()
    platform.start_processing()
    try:
        # A gateway login may not write /readings under this ACL; a device's own login may.
        _publish_as(
            persistent_broker,
            "sub-01",
            provisioned["sub-01"],
            "civicguard/sub-01/readings",
            [substation(1, now)],
        )
        body = substation(2, now)
        signed = orjson.dumps({"sig": sign(provisioned["sub-01"], body), "body": body.decode()})
        _publish_as(
            persistent_broker, "sub-01", provisioned["sub-01"], "civicguard/sub-01/signed", [signed]
        )
        wait_for(lambda: dead_letters(platform) == {"bad_credentials": 1}, "the refusal")
        wait_for(lambda: len(stored(platform, "sub-01")) == 1, "the signed reading stored")
    finally:
        adapter.stop()
    assert [r["seq"] for r in stored(platform, "sub-01")] == [2]
    (letter,) = platform.store.dead_letters.query(reason="bad_credentials")
    assert "CIVICGUARD_MQTT_TRUST_TOPIC" in letter["detail"]
    assert b"voltage" not in letter["payload"].encode()  # unauthenticated: content not kept


# -- serve as a real process: kill -9, restart, every message stored once ----------------------

CLI = Path(sys.executable).with_name("civicguard")


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``civicguard ARGS --data-dir DATA_DIR``; its standard output."""
    done = subprocess.run(
        [str(CLI), *args, "--data-dir", str(data_dir)],
        env=(env or os.environ) | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def provision_by_cli(data_dir: Path, device_id: str, stream: str) -> str:
    """Provision a device with the CLI; its secret."""
    out = cli(data_dir, "devices", "provision", device_id, "--stream", stream,
              "--lat", "21.8818", "--lon", "-102.2916")  # fmt: skip
    return out.rsplit(":", 1)[1].split()[0]


@contextmanager
def serving(data_dir: Path, env: dict[str, str], stderr: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``civicguard serve`` as an operator runs it (stderr to a file); stopped with SIGTERM."""
    from tests.services import free_port, port_open

    port = free_port()
    with stderr.open("ab") as err:
        proc = subprocess.Popen(
            [str(CLI), "serve", "--data-dir", str(data_dir), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port, timeout=0.2):
            assert proc.poll() is None, stderr.read_text(errors="replace")
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        proc.port = port  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def stored_seqs(data_dir: Path, device_id: str) -> list[int]:
    """The sequence numbers stored for ``device_id``, read from the SQLite file directly."""
    path = data_dir / "civicguard.db"
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            rows = db.execute("SELECT seq FROM readings WHERE device_id = ?", (device_id,))
            return sorted(int(seq) for (seq,) in rows)
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def signed_messages(secret: str, seqs: range, ts: float) -> list[bytes]:
    """Substation readings as a device without a broker login of its own sends them."""
    bodies = [substation(seq, ts) for seq in seqs]
    return [orjson.dumps({"sig": sign(secret, b), "body": b.decode()}) for b in bodies]


def publish_anonymously(broker: Any, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 on a broker without logins, waiting for each acknowledgement."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.mqtt
def test_serve_killed_and_restarted_stores_every_mqtt_message_once(tmp_path: Path) -> None:
    """kill -9 of serve; messages published while it is down and while it dies are delivered
    again by the broker (persistent session, acknowledged only once durable): stored once."""
    from tests.ingest.mosquitto import mosquitto

    data_dir = tmp_path / "data"
    secret = provision_by_cli(data_dir, "sub-01", "power.substation")
    topic = "civicguard/sub-01/signed"
    with mosquitto(tmp_path / "broker", persistence=True) as broker:
        env = os.environ | {
            "CIVICGUARD_MQTT_HOST": broker.host,
            "CIVICGUARD_MQTT_PORT": str(broker.port),
        }
        now = time.time()
        with serving(data_dir, env, tmp_path / "serve.err") as serve:
            publish_anonymously(broker, topic, signed_messages(secret, range(1, 51), now))
            wait_for(lambda: len(stored_seqs(data_dir, "sub-01")) > 0, "the first stored", 30)
            publish_anonymously(broker, topic, signed_messages(secret, range(51, 101), now))
            serve.kill()  # SIGKILL right after publishing: no shutdown, no drain
            serve.wait()
        # While serve is down: the broker keeps these for civicguard's session.
        publish_anonymously(broker, topic, signed_messages(secret, range(101, 151), now))
        with serving(data_dir, env, tmp_path / "serve.err"):
            wait_for(lambda: len(stored_seqs(data_dir, "sub-01")) >= 150, "all 150 stored", 30)
            time.sleep(0.5)  # anything delivered twice would be stored by now
            assert stored_seqs(data_dir, "sub-01") == list(range(1, 151))

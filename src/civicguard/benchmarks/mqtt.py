"""MQTT ingest benchmark: our full path against a bare paho subscriber on the same broker.

Both phases receive the same burst of single-reading substation messages, published at QoS 1
by ``mosquitto_pub`` processes (one per device) while the subscriber is away, so that the broker
holds them as a backlog for the subscriber's persistent session; the publishers are done before
the clock starts, so they take no CPU from what is measured. The bare client only receives and
parses (``orjson.loads``); ours runs :class:`~civicguard.ingest.mqtt.MqttIngest` -> ingest ->
privacy gateway -> event log -> detectors -> SQLite. A rate is messages divided by the time from
connecting to the last message received (bare) or stored (ours).
"""

from __future__ import annotations

import contextlib
import getpass
import math
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from civicguard.ingest.model import Device
from civicguard.ingest.mqtt import MqttIngest
from civicguard.platform import Platform

PREFIX = "civicguard"


def compare_mqtt(
    host: str,
    port: int,
    messages: int,
    make_platform: Callable[[], Platform],
    *,
    devices: int = 4,
    time_limit: float = 180.0,
    receiver: Literal["thread", "process"] = "process",
    detectors: bool = True,
) -> dict[str, Any]:
    """Rates of a bare client and of our full MQTT path for ``messages`` messages.

    ``port == 0`` starts a private Mosquitto on a free port. The platform ``make_platform``
    builds is closed here. Each phase stops itself after ``time_limit / 2`` seconds; a phase
    cut short reports the rate of what it got through (and ``complete`` is False).
    ``detectors=False`` empties the processor's detector list to time ingest and storage alone.
    """
    with contextlib.ExitStack() as stack:
        if port == 0:
            host, port = stack.enter_context(_private_broker())
        bursts = _bursts(messages, devices, time.time())
        phase_limit = time_limit / 2
        bare_n, bare_s = _bare_phase(host, port, bursts, messages, phase_limit)
        ours_n, ours_s, extra = _civicguard_phase(
            host,
            port,
            bursts,
            messages,
            make_platform,
            limit=phase_limit,
            receiver=receiver,
            detectors=detectors,
        )
    bare_rate = bare_n / bare_s if bare_s > 0 else math.nan
    ours_rate = ours_n / ours_s if ours_s > 0 else math.nan
    return {
        "messages": messages,
        "bare_msgs_per_s": round(bare_rate, 1),
        "civicguard_msgs_per_s": round(ours_rate, 1),
        "ratio": round(ours_rate / bare_rate, 3) if bare_rate > 0 else math.nan,
        "complete": bare_n == messages and ours_n == messages,
        "receiver": receiver,
        "detectors": detectors,
        **extra,
    }


def _bursts(messages: int, devices: int, now: float) -> dict[str, bytes]:
    """Per device, newline-separated single-reading messages (``mosquitto_pub -l`` input)."""
    per_device = [
        messages // devices + (1 if i < messages % devices else 0) for i in range(devices)
    ]
    out: dict[str, bytes] = {}
    for d, count in enumerate(per_device):
        # Readings reach back in time so that none is from the future or older than a day.
        step = min(1.0, 80_000.0 / max(count, 1))
        start = now - count * step
        lines = []
        for i in range(count):
            phase = (i % 600) / 600 * 2 * math.pi
            lines.append(
                orjson.dumps(
                    {
                        "seq": i + 1,
                        "ts": round(start + i * step, 3),
                        "values": {
                            "voltage": round(11.0 + 0.2 * math.sin(phase), 4),
                            "frequency": round(50.0 + 0.02 * math.cos(phase), 4),
                            "load": round(12.0 + d + 0.5 * math.sin(phase), 3),
                        },
                    }
                )
            )
        out[f"bench-sub-{d + 1:02d}"] = b"\n".join(lines) + b"\n"
    return out


def _publish(host: str, port: int, bursts: dict[str, bytes]) -> list[threading.Thread]:
    """Start one ``mosquitto_pub -l`` per device feeding it its burst; returns feeder threads."""
    binary = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
    threads = []
    for device_id, data in bursts.items():
        topic = f"{PREFIX}/{device_id}/readings"
        cmd = [binary, "-h", host, "-p", str(port), "-q", "1", "-t", topic, "-l"]
        thread = threading.Thread(
            target=subprocess.run,
            args=(cmd,),
            kwargs={"input": data, "check": False, "timeout": 600},
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    return threads


def _queue_backlog(host: str, port: int, bursts: dict[str, bytes]) -> None:
    """Publish every burst and wait until the publishers are done (the broker holds them)."""
    for thread in _publish(host, port, bursts):
        thread.join(timeout=600)


def _bare_phase(
    host: str, port: int, bursts: dict[str, bytes], messages: int, limit: float
) -> tuple[int, float]:
    """Messages a bare paho client received and parsed, and the seconds it took to drain them."""
    received = [0]
    last = [0.0]
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        orjson.loads(message.payload)
        received[0] += 1
        if received[0] >= messages:
            last[0] = time.perf_counter()
            done.set()

    def client() -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="civicguard-bench-bare", clean_session=False
        )
        c.on_message = on_message
        c.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/+/readings", 1)
        c.on_subscribe = lambda *_: subscribed.set()
        return c

    # A persistent session subscribes first, so that the broker queues the backlog for it.
    first = client()
    first.connect(host, port)
    first.loop_start()
    if not subscribed.wait(10):
        raise ConnectionError(f"bare client could not subscribe at {host}:{port}")
    first.disconnect()
    first.loop_stop()
    _queue_backlog(host, port, bursts)
    drain = client()
    start = time.perf_counter()
    drain.connect(host, port)
    drain.loop_start()
    try:
        if not done.wait(limit):
            last[0] = time.perf_counter()
    finally:
        drain.disconnect()
        drain.loop_stop()
    return received[0], last[0] - start


def _civicguard_phase(
    host: str,
    port: int,
    bursts: dict[str, bytes],
    messages: int,
    make_platform: Callable[[], Platform],
    *,
    limit: float,
    receiver: Literal["thread", "process"],
    detectors: bool,
) -> tuple[int, float, dict[str, Any]]:
    """Messages our full path stored, and the seconds from connecting until all were stored."""
    platform = make_platform()
    try:
        now = platform.clock.now()
        platform.registry.provision_many(
            [Device(id=d, stream="power.substation", lat=21.88, lon=-102.29) for d in bursts], now
        )
        if not detectors:
            platform.processor.detectors = []

        def adapter() -> MqttIngest:
            return MqttIngest(
                platform.ingest,
                platform.registry,
                host,
                port,
                client_id="civicguard-bench-ours",
                receiver=receiver,
                trust_topic=True,  # the bench's own broker: only its publishers log in
            )

        first = adapter()  # open the persistent session the backlog is queued for
        first.start()
        first.stop()
        _queue_backlog(host, port, bursts)
        platform.start_processing()
        drain = adapter()
        start = time.perf_counter()
        drain.start()
        try:
            deadline = start + limit
            stored = 0
            writer = platform.processor.writer
            assert writer is not None  # start_processing stores through a background writer
            # Watch the writer's count: a COUNT(*) over the growing table would itself eat
            # the CPU being measured.
            while time.perf_counter() < deadline:
                stored = writer.stored
                if stored >= messages:
                    break
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
        finally:
            drain.stop()
        stored = platform.store.readings.count()
        extra = {
            "received": first.received + drain.received,
            "dead_letters": sum(platform.store.dead_letters.count_by_reason().values()),
        }
    finally:
        platform.close()
    return stored, elapsed, extra


@contextlib.contextmanager
def _private_broker() -> Iterator[tuple[str, int]]:
    """A throwaway anonymous Mosquitto on a free port, with unbounded queues for bursts."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="civicguard-bench-") as tmp:
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"user {getpass.getuser()}\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto ({binary}) did not start on port {port}")
                time.sleep(0.05)
            yield "127.0.0.1", port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

"""``civicguard bench ingest``: readings through the whole pipeline, as fast as it goes.

Every reading is authenticated (an HMAC over its body), validated, sequence-checked, passed
through the privacy gateway, published on the in-process event log, run through every registered
detector and stored in SQLite. Bodies are batches of readings from one device, as a gateway or a
buffering device sends them over HTTP; the producer and the pipeline's consumer run in separate
threads with back-pressure, as in ``civicguard serve``.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from rich.console import Console
from rich.progress import Progress

from civicguard.catalog.model import Stream
from civicguard.ingest.model import Device, ReadingBatch, Transport
from civicguard.ingest.registry import sign
from civicguard.platform import Platform
from civicguard.privacy.gateway import PrivacyGateway
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings
from civicguard.store.writer import BackgroundWriter

#: Share of devices per stream in the benchmark fleet (roughly a city's mix).
FLEET = {
    "power.substation": 60,
    "water.tank": 40,
    "water.pump": 40,
    "traffic.counter": 200,
    "access.door": 150,
    "crowd.counter": 80,
    "air.quality": 150,
    "traffic.anpr": 150,
    "presence.wifi": 130,
}


class PassThroughGateway(PrivacyGateway):
    """No privacy treatments: only the device's cell, which the rest of the pipeline needs.

    The "without" run of the benchmark, to measure what the gateway costs. Never in a platform.
    """

    def protect(self, batch: ReadingBatch, cell: str) -> ReadingBatch:
        """The batch unchanged but placed on ``cell``."""
        return dataclasses.replace(batch, cells=(cell,) * len(batch))


@dataclass(frozen=True, slots=True)
class _Body:
    device_id: str
    body: bytes
    signature: str
    readings: int


def _values(
    stream: Stream, rng: np.random.Generator, n: int, plates: list[str]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [{} for _ in range(n)]
    for spec in stream.fields:
        if spec.name == "rssi_mean":
            col: list[object] = rng.uniform(-80, -50, n).round(1).tolist()
        elif spec.type.value == "boolean":
            col = [False] * n
        elif spec.type.value in ("number", "integer"):
            lo, hi = spec.normal or spec.range or (0.0, 100.0)
            # Small noise around the middle of the normal band: a healthy city, where the
            # injected anomalies are the only thing detectors should flag.
            mid, span = (lo + hi) / 2, (hi - lo) / 400
            if spec.max_rate is not None:  # and no faster than the field can really change
                span = min(span, spec.max_rate / 10)
            vals = rng.normal(mid, span, n).clip(lo, hi)
            col = (
                vals.round().astype(int).tolist()
                if spec.type.value == "integer"
                else vals.round(3).tolist()
            )
        elif spec.name == "plate":
            col = [plates[int(i)] for i in rng.integers(0, len(plates), n)]
        elif spec.name == "macs":
            col = [
                [f"02:00:00:{a:02x}:{b:02x}:{c:02x}" for a, b, c in rng.integers(0, 256, (3, 3))]
                for _ in range(n)
            ]
        elif spec.choices:
            col = [spec.choices[0]] * n
        else:
            col = ["x"] * n
        for row, v in zip(rows, col, strict=True):
            row[spec.name] = v
    if stream.name == "power.substation":
        for row in rows:
            row["frequency"] = 50.0  # rate-of-change detectors watch frequency; keep it steady
    return rows


def _make_bodies(
    platform: Platform, total: int, per_body: int, rng: np.random.Generator, anomaly_every: int
) -> list[_Body]:
    now = platform.clock.now()
    devices: list[Device] = []
    for stream, count in FLEET.items():
        for i in range(count):
            devices.append(
                Device(
                    id=f"bench-{stream}-{i:04d}", stream=stream, lat=21.88 + i * 1e-4, lon=-102.29
                )
            )
    secrets = platform.registry.provision_many(devices, now)
    plates = [f"AGS{n:04d}" for n in range(5000)]
    seq = dict.fromkeys(secrets, 0)
    # Each device reports once a second; its first buffered reading is six hours old, which
    # leaves room for 40 uploads of 500 readings before any would be from the future.
    clock = dict.fromkeys(secrets, now - 6 * 3600.0)
    bodies: list[_Body] = []
    chooser = random.Random(7)
    n_bodies = total // per_body
    substations = [d for d in devices if d.stream == "power.substation"]
    for b in range(n_bodies):
        attacked = bool(anomaly_every) and b % anomaly_every == anomaly_every - 1
        device = chooser.choice(substations if attacked else devices)
        spec = platform.catalog.stream(device.stream)
        values = _values(spec, rng, per_body, plates)
        if attacked:
            values[-1]["frequency"] = 51.3  # a manipulated frequency: detectors must flag it
        start = seq[device.id]
        t0 = clock[device.id]
        items = [{"seq": start + k + 1, "ts": t0 + k, "values": v} for k, v in enumerate(values)]
        seq[device.id] = start + per_body
        clock[device.id] = t0 + per_body
        body = orjson.dumps(items)
        bodies.append(_Body(device.id, body, sign(secrets[device.id], body), per_body))
    return bodies


def run_pipeline(
    readings: int, per_body: int = 500, console: Console | None = None, *, privacy: bool = True
) -> dict[str, float]:
    """Push ``readings`` through the embedded pipeline; return throughput and latency figures.

    ``privacy=False`` swaps the privacy gateway for a pass-through one (to measure its cost).
    """
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="civicguard-bench-") as tmp:
        platform = Platform.build(Settings(data_dir=Path(tmp)), keys=MemoryKeyStore())
        if not privacy:
            platform.ingest.gateway = PassThroughGateway(platform.catalog, MemoryKeyStore())
        rng = np.random.default_rng(7)
        with console.status("generating readings"):
            bodies = _make_bodies(platform, readings, per_body, rng, anomaly_every=20)
        total = sum(b.readings for b in bodies)
        stop = threading.Event()
        platform.processor.writer = BackgroundWriter(platform.store)
        consumer = threading.Thread(target=platform.processor.run, args=(stop,), daemon=True)
        started = time.perf_counter()
        consumer.start()
        pending = getattr(platform.log, "pending", lambda: 0)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("readings", total=total)
            for i, body in enumerate(bodies):
                device = platform.registry.by_signature(body.device_id, body.body, body.signature)
                platform.ingest.submit(device, body.body, Transport.HTTP)
                while pending() > 8:  # back-pressure, as an HTTP server would apply
                    time.sleep(0.0005)
                if i % 50 == 0:
                    progress.update(task, completed=(i + 1) * per_body)
        while pending():
            time.sleep(0.001)
        stop.set()
        consumer.join()
        platform.processor.writer.close()
        elapsed = time.perf_counter() - started
        stored = platform.store.readings.count()
        refused = sum(platform.store.dead_letters.count_by_reason().values())
        latencies = np.array(platform.processor.latencies or [np.nan])
        raised = Counter(a.detector for a in platform.store.alerts.query(limit=total))
        platform.close()
    return {
        "readings": float(total),
        "stored": float(stored),
        "refused": float(refused),
        "seconds": elapsed,
        "readings_per_s": total / elapsed,
        "alerts": float(len(platform.processor.latencies)),
        "latency_p50_ms": float(np.nanpercentile(latencies, 50) * 1000),
        "latency_p99_ms": float(np.nanpercentile(latencies, 99) * 1000),
        # Stored alerts by detector, as "alerts.<detector>".
        **{f"alerts.{name}": float(n) for name, n in sorted(raised.items())},
    }


def run_ingest_benchmark(readings: int, mqtt_messages: int, mqtt_port: int) -> None:
    """Run the batch path and the MQTT comparison and print their figures."""
    console = Console()
    bare = run_pipeline(readings, console=console, privacy=False)
    figures = run_pipeline(readings, console=console)
    console.print(
        f"batch path: {int(figures['readings']):,} readings in {figures['seconds']:.1f} s, "
        f"{int(figures['stored']):,} stored, {int(figures['refused']):,} refused, "
        f"{int(figures['alerts'])} alerts"
    )
    by_detector = ", ".join(
        f"{key.removeprefix('alerts.')} {int(n)}"
        for key, n in figures.items()
        if key.startswith("alerts.")
    )
    console.print(f"alerts by detector: {by_detector or 'none'}")
    cost = 1 - figures["readings_per_s"] / bare["readings_per_s"]
    console.print(
        f"privacy gateway: {figures['readings_per_s']:,.0f} readings/s with it, "
        f"{bare['readings_per_s']:,.0f} without (pass-through), cost {cost * 100:.1f}%"
    )
    console.print(
        f"reading->alert latency: p50 {figures['latency_p50_ms']:.1f} ms, "
        f"p99 {figures['latency_p99_ms']:.1f} ms"
    )
    if mqtt_messages:
        try:
            from civicguard.benchmarks.mqtt import compare_mqtt
        except ImportError as exc:  # pragma: no cover - only while the MQTT path is missing
            console.print(f"mqtt comparison skipped: {exc}")
        else:
            with tempfile.TemporaryDirectory(prefix="civicguard-bench-mqtt-") as tmp:

                def make_platform() -> Platform:
                    return Platform.build(Settings(data_dir=Path(tmp)), keys=MemoryKeyStore())

                mqtt = compare_mqtt("127.0.0.1", mqtt_port, mqtt_messages, make_platform)
            console.print(
                f"mqtt: bare paho client {mqtt['bare_msgs_per_s']:,.0f} msgs/s, "
                f"civicguard MQTT path {mqtt['civicguard_msgs_per_s']:,.0f} msgs/s "
                f"({mqtt['ratio'] * 100:.0f}% of bare)"
            )
    print(f"readings/s: {figures['readings_per_s']:,.0f}")

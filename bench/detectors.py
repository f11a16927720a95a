"""Benchmark: readings per second of every registered detector.

Feeds each detector batches totalling 100,000 substation readings from 300 devices (normal
traffic, a few devices attacked so that alert paths run too) and prints readings per second.

    .venv/bin/python bench/detectors.py [--readings 100000] [--devices 300] [--batch 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from civicguard.catalog.loader import demo_catalog
from civicguard.detect.registry import default_detectors
from civicguard.ingest.model import ReadingBatch, Transport

STREAM = "power.substation"
START = 1_790_000_000.0


def make_batches(readings: int, devices: int, batch: int) -> list[ReadingBatch]:
    """Substation batches: every device once a second, readings in arrival order."""
    rng = np.random.default_rng(11)
    index = np.arange(readings)
    device = index % devices
    ts = START + index // devices + rng.uniform(0, 0.05, readings)
    values = np.column_stack(
        [
            rng.normal(11.0, 0.05, readings),
            rng.normal(50.0, 0.015, readings),
            rng.normal(20.0, 0.5, readings),
        ]
    )
    attacked = (device < 3) & (index // devices > (readings // devices) // 2)
    values[attacked, 1] = 51.2
    ids = np.array([f"sub-{d:03d}" for d in range(devices)], dtype=object)[device]
    batches = []
    for lo in range(0, readings, batch):
        hi = min(lo + batch, readings)
        n = hi - lo
        batches.append(
            ReadingBatch(
                stream=STREAM,
                fields=("voltage", "frequency", "load"),
                device_ids=tuple(ids[lo:hi].tolist()),
                seq=index[lo:hi].astype(np.int64),
                ts=ts[lo:hi],
                received_at=ts[lo:hi] + 0.01,
                values=values[lo:hi],
                text={},
                cells=("8a498a40001ffff",) * n,
                transport=Transport.SIMULATOR,
            )
        )
    return batches


def main() -> None:
    """Run every detector over the same batches and print its throughput."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()
    batches = make_batches(args.readings, args.devices, args.batch)
    catalog = demo_catalog()
    print(f"{args.readings} readings, {args.devices} devices, batches of {args.batch}")
    for detector in default_detectors(catalog, lambda _: None):
        started = time.perf_counter()
        alerts = 0
        for batch in batches:
            alerts += len(detector.process(batch, float(batch.ts.max())))
        alerts += len(detector.tick(float(batches[-1].ts.max())))
        elapsed = time.perf_counter() - started
        print(
            f"{detector.name:<18} {args.readings / elapsed:>12,.0f} readings/s "
            f"({elapsed * 1000:7.1f} ms, {alerts} alerts)"
        )


if __name__ == "__main__":
    main()

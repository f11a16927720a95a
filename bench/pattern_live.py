"""Benchmark: CPU time per reading of the live pattern detector, on ``bench ingest``'s batches.

Bodies of 500 readings of one device (once a second, each device's uploads continuing in
time), devices drawn from the ingest benchmark's fleet, the wall clock advancing as if the
pipeline took ``--rate`` readings a second and ticking every half second. Prints the CPU
time of ``process()`` and ``tick()`` per reading, the windows scored and the alerts raised.

    .venv/bin/python bench/pattern_live.py [--readings 200000] [--per-body 500] [--rate 25000]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from civicguard.benchmarks.ingest import FLEET
from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import Catalog, FieldType
from civicguard.detect.univariate_live import PatternAnomalyDetector
from civicguard.ingest.model import ReadingBatch, Transport

START = 1_790_000_000.0


def make_batches(catalog: Catalog, readings: int, per_body: int) -> list[ReadingBatch]:
    """One batch per body, as the ingest benchmark sends them (numeric fields only)."""
    rng = np.random.default_rng(7)
    chooser = random.Random(7)
    devices = [(stream, f"bench-{stream}-{i:04d}") for stream, n in FLEET.items() for i in range(n)]
    clock = {device: START for _, device in devices}
    seq = dict.fromkeys(clock, 0)
    batches = []
    for b in range(readings // per_body):
        attacked = b % 20 == 19
        pool = [d for d in devices if d[0] == "power.substation"] if attacked else devices
        stream_name, device = chooser.choice(pool)
        stream = catalog.stream(stream_name)
        specs = [f for f in stream.numeric_fields if f.type is not FieldType.BOOLEAN]
        columns = []
        for spec in specs:
            lo, hi = spec.normal or spec.range or (0.0, 100.0)
            span = (hi - lo) / 400
            if spec.max_rate is not None:
                span = min(span, spec.max_rate / 10)
            column = rng.normal((lo + hi) / 2, span, per_body).clip(lo, hi)
            if spec.name == "frequency":
                column[:] = 50.0
                if attacked:
                    column[-1] = 51.3
            columns.append(column.round() if spec.type is FieldType.INTEGER else column)
        values = np.column_stack(columns) if columns else np.zeros((per_body, 0))
        ts = clock[device] + np.arange(per_body, dtype=np.float64)
        clock[device] += per_body
        batches.append(
            ReadingBatch(
                stream=stream_name,
                fields=tuple(f.name for f in specs),
                device_ids=(device,) * per_body,
                seq=seq[device] + 1 + np.arange(per_body, dtype=np.int64),
                ts=ts,
                received_at=ts,
                values=values,
                text={},
                cells=("",) * per_body,
                transport=Transport.HTTP,
            )
        )
        seq[device] += per_body
    return batches


def main() -> None:
    """Run the detector over the batches and print its CPU time per reading."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--per-body", type=int, default=500)
    parser.add_argument("--rate", type=float, default=25_000.0)
    args = parser.parse_args()
    catalog = demo_catalog()
    batches = make_batches(catalog, args.readings, args.per_body)
    detector = PatternAnomalyDetector(catalog, lambda _: None)
    now, next_tick, alerts = START, START + 0.5, 0
    cpu = 0.0
    for batch in batches:
        now += len(batch) / args.rate
        started = time.process_time()
        alerts += len(detector.process(batch, now))
        if now >= next_tick:
            alerts += len(detector.tick(now))
            next_tick = now + 0.5
        cpu += time.process_time() - started
    started = time.process_time()
    alerts += len(detector.tick(now + 3600.0))
    cpu += time.process_time() - started
    total = sum(len(b) for b in batches)
    print(f"pattern_anomaly: {total:,} readings, {alerts} alerts")
    print(f"cpu per reading: {cpu / total * 1e6:.2f} us ({cpu:.2f} s)")


if __name__ == "__main__":
    main()

"""Benchmark: the bare insert rate of the durable local event log (ADR 0005).

Publishes ``--events`` events, one call each, of ``--readings`` air-quality readings (an HTTP
body's worth) into a fresh ``events.db`` with ``synchronous=NORMAL`` (the default) and with
``FULL`` (fsync at every commit), and prints events/s and readings/s for each; then the rate
of consuming and committing them from the file (decoded: another process's events, or after a
restart), and of ``serve``'s own path (publish, consume what it kept in memory, commit).
Encoding (the codec) is part of the cost.

    .venv/bin/python bench/event_log.py [--events 2000] [--readings 500] [--dir DIR]

``--dir`` puts the file on a given filesystem (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from civicguard.bus.local import LocalEventLog, Synchronous
from civicguard.ingest.model import ReadingBatch, Transport


def make_batch(n: int, first_seq: int) -> ReadingBatch:
    """A protected air-quality batch of ``n`` readings from one device, as ingest publishes."""
    rng = np.random.default_rng(first_seq)
    index = np.arange(first_seq, first_seq + n)
    return ReadingBatch(
        stream="air.quality",
        fields=("pm25", "pm10", "no2"),
        device_ids=("aq-0001",) * n,
        seq=index.astype(np.int64),
        ts=1_790_000_000.0 + index.astype(np.float64),
        received_at=1_790_000_000.5 + index.astype(np.float64),
        values=rng.uniform(0, 200, (n, 3)),
        text={},
        cells=("8949a0c2d0bffff",) * n,
        transport=Transport.HTTP,
    )


def run(where: Path, events: int, readings: int, synchronous: Synchronous) -> dict[str, float]:
    """Events/s for: publishing alone, consuming from the file, and the two in one process."""
    batches = [make_batch(readings, i * readings) for i in range(events)]
    path = where / f"events-{synchronous.lower()}.db"
    rates: dict[str, float] = {}
    log = LocalEventLog(path, synchronous=synchronous)
    try:
        started = time.perf_counter()
        for b in batches:
            log.publish([b])
        rates["publish"] = events / (time.perf_counter() - started)
        # Another process's events, or this one's after a restart: decoded from the file.
        started = time.perf_counter()
        got = 0
        while got < events:
            got += len(log.consume(64, 1.0))
            log.commit()
        rates["consume"] = events / (time.perf_counter() - started)
        # serve's path: the consumer publishes, consumes (kept in memory) and commits.
        started = time.perf_counter()
        for b in batches:
            log.publish([b])
            log.consume(64, 1.0)
            log.commit()
        rates["serve"] = events / (time.perf_counter() - started)
    finally:
        log.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--readings", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="civicguard-bench-log-", dir=args.dir) as tmp:
        for level in ("NORMAL", "FULL"):
            rates = run(Path(tmp), args.events, args.readings, level)  # type: ignore[arg-type]
            print(
                f"synchronous={level}: publish {rates['publish']:,.0f} events/s "
                f"({rates['publish'] * args.readings:,.0f} readings/s); "
                f"consume+commit from the file {rates['consume']:,.0f} events/s; "
                f"publish+consume+commit in one process {rates['serve']:,.0f} events/s "
                f"({rates['serve'] * args.readings:,.0f} readings/s)"
            )


if __name__ == "__main__":
    main()

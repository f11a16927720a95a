"""Benchmark: how fast the store writes readings, on SQLite and on PostgreSQL.

Writes 200,000 readings in batches of 1,000 through ``ReadingRepository.write`` into a fresh
database, then writes the same batches again (every row a duplicate, so nothing new must be
stored) and prints rows per second for both passes.

    .venv/bin/python bench/store_write.py [--rows 200000] [--batch 1000] [--pg-url URL]

PostgreSQL is skipped with a message when the server (default 127.0.0.1:5432, user postgres)
cannot be reached; a throwaway database is created for the run and dropped after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

from civicguard.ingest.model import ReadingBatch, Transport
from civicguard.store.database import make_engine, sqlite_url
from civicguard.store.migrate import upgrade
from civicguard.store.repositories import Store

DEVICES = 500


def make_batches(rows: int, batch_size: int) -> list[ReadingBatch]:
    """Traffic-counter-like batches: two numeric fields and one pseudonymous text field."""
    rng = np.random.default_rng(7)
    batches = []
    start = 1_790_000_000.0
    for b in range(rows // batch_size):
        n = batch_size
        index = np.arange(b * n, (b + 1) * n)
        device = index % DEVICES
        values = np.column_stack(
            [rng.integers(0, 100, n).astype(np.float64), rng.uniform(0, 120, n)]
        )
        batches.append(
            ReadingBatch(
                stream="traffic.counter",
                fields=("vehicles", "mean_speed"),
                device_ids=tuple(f"traffic-{d:04d}" for d in device),
                seq=(index // DEVICES).astype(np.int64),
                ts=start + index.astype(np.float64) * 0.01,
                received_at=start + index.astype(np.float64) * 0.01 + 0.05,
                values=values,
                text={"vehicle": [f"pn_{i % 9973:08x}" for i in index]},
                cells=tuple(f"8a49a{d % 64:010x}" for d in device),
                transport=Transport.HTTP,
            )
        )
    return batches


def run(name: str, url: str, batches: list[ReadingBatch]) -> None:
    """Write ``batches`` twice into the empty database at ``url`` and print the rates."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        store = Store(engine)
        total = sum(len(b) for b in batches)
        for label in ("new rows", "duplicates"):
            started = time.perf_counter()
            stored = sum(store.readings.write([batch]) for batch in batches)
            elapsed = time.perf_counter() - started
            print(
                f"{name:<10} {label:<10} {total:>8} rows in {elapsed:6.2f} s = "
                f"{total / elapsed:>9,.0f} rows/s  (stored {stored})"
            )
        assert store.readings.count() == total, "every reading must be stored exactly once"
    finally:
        engine.dispose()


def main() -> None:
    """Run the benchmark on SQLite, then on PostgreSQL if it is reachable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    batches = make_batches(args.rows, args.batch)

    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", sqlite_url(Path(tmp)), batches)

    admin_url = args.pg_url
    name = f"civicguard_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"postgresql skipped: {exc}".strip())
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            run("postgresql", admin_url.rsplit("/", 1)[0] + f"/{name}", batches)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

"""City-scale mode under faults, with real processes: recovery times and worker throughput.

    .venv/bin/python bench/city_scale.py [--outage 60] [--readings 40000]

Starts its own nats-server (JetStream, store in a temp dir) and PostgreSQL database on the local
server, provisions four devices with the CLI, runs ``civicguard serve`` and one
``civicguard worker --partition i`` per partition, and posts readings over HTTP as devices do.
For each fault it prints what was acknowledged, stored, lost and duplicated, and the recovery
time: from the fault (for the database: from its return) until every reading acknowledged
before that instant is stored. Then it fills the stream with ``serve`` alone and times one
worker against two draining it. The processes' helpers are those of the test suite
(``tests/bus/city.py``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bus.city import (
    City,
    PgDatabase,
    Sender,
    Sensor,
    consumers,
)
from tests.bus.nats_server import NatsServer

from civicguard.benchmarks.processes import TcpProxy

DEVICES = ("substation-00", "substation-01", "substation-04", "substation-05")


def provisioned(root: Path, nats_url: str) -> tuple[PgDatabase, Path, list[Sensor]]:
    """A template database and data directory with DEVICES provisioned through the CLI."""
    template = PgDatabase(prefix="civicguard_bench_template").create()
    data_dir = root / "template"
    city = City(nats_url, template.url, data_dir, root / "template-logs")
    return template, data_dir, [city.provision(d) for d in DEVICES]


class Run:
    """One city on copies of the template: its own nats-server, database and processes."""

    def __init__(self, root: Path, template: tuple[PgDatabase, Path, list[Sensor]], name: str,
                 partitions: int = 2) -> None:  # fmt: skip
        self.dir = root / name
        self.nats = NatsServer(self.dir / "nats").start()
        self.db = PgDatabase(prefix="civicguard_bench").create(template=template[0])
        shutil.copytree(template[1], self.dir / "data")
        self.proxy = TcpProxy(self.db.port, self.db.host)
        self.proxy.open()
        self.city = City(
            self.nats.url,
            self.db.url,
            self.dir / "data",
            self.dir / "logs",
            partitions=partitions,
            worker_database_url=self.db.url_via("127.0.0.1", self.proxy.port),
        )
        self.sensors = [Sensor(s.device_id, s.secret) for s in template[2]]

    def start(self, workers: bool = True) -> None:
        self.city.wait_serving(self.city.serve())
        if workers:
            for p in range(self.city.partitions):
                self.city.worker(p)
            wait_consumers(self.city, self.city.partitions)

    def close(self) -> None:
        self.city.stop_all()
        self.proxy.close()
        self.nats.stop()
        self.db.drop()


def wait_consumers(city: City, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(consumers(city.nats_url)) == n:
                return
        except Exception:  # noqa: S110 - no stream yet
            pass
        time.sleep(0.1)
    raise TimeoutError("workers did not come up")


def until_stored(db: PgDatabase, wanted: set[tuple[str, int]], timeout: float = 600.0) -> float:
    """Seconds until every reading in ``wanted`` is stored (polling every 0.1 s)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if wanted <= set(db.stored_readings()):
            return time.monotonic() - started
        time.sleep(0.1)
    return float("nan")


def fault_row(run: Run, name: str, fault: Callable[[Sender], float]) -> dict[str, object]:
    """Post in the background, apply ``fault`` mid-stream, and count what became of it all."""
    sender = Sender(run.city, run.sensors)
    posting = sender.in_background(10_000, between=0.05)
    while len(run.db.stored_readings()) < 1000:
        time.sleep(0.05)
    recovery = fault(sender)
    sender_stop(sender, posting)
    rows = run.db.stored_readings()
    deadline = time.monotonic() + 120
    while not sender.acknowledged <= set(rows) and time.monotonic() < deadline:
        time.sleep(0.5)
        rows = run.db.stored_readings()
    stored = set(rows)
    return {
        "fault": name,
        "acknowledged": len(sender.acknowledged),
        "stored": len(stored & sender.acknowledged),
        "lost": len(sender.acknowledged - stored),
        "duplicated": len(rows) - len(stored),
        "refused (503)": sender.unavailable,
        "recovery s": round(recovery, 1),
        "errors": len(sender.errors),
    }


def sender_stop(sender: Sender, posting: threading.Thread) -> None:
    """Let the devices post a few more seconds after the recovery, then stop them."""
    time.sleep(3)
    sender.stopping.set()
    posting.join(timeout=60)


def kill_worker(run: Run) -> Callable[[Sender], float]:
    def fault(sender: Sender) -> float:
        victim = next(p for p in run.city.processes if p.name == "worker-0")
        before = set(sender.acknowledged)
        victim.kill()
        killed = time.monotonic()
        victim.start()
        until_stored(run.db, before)
        return time.monotonic() - killed

    return fault


def restart_nats(run: Run) -> Callable[[Sender], float]:
    def fault(sender: Sender) -> float:
        before = set(sender.acknowledged)
        started = time.monotonic()
        run.nats.restart()
        until_stored(run.db, before)
        return time.monotonic() - started

    return fault


def database_away(run: Run, outage: float) -> Callable[[Sender], float]:
    def fault(sender: Sender) -> float:
        run.proxy.close()
        time.sleep(outage)
        before = set(sender.acknowledged)
        run.proxy.open()
        back = time.monotonic()
        until_stored(run.db, before)
        return time.monotonic() - back

    return fault


def throughput(root: Path, template: tuple[PgDatabase, Path, list[Sensor]], partitions: int,
               readings: int) -> tuple[float, float]:  # fmt: skip
    """Fill the stream with ``serve`` alone, then time ``partitions`` workers draining it."""
    run = Run(root, template, f"throughput-{partitions}", partitions=partitions)
    try:
        run.start(workers=False)
        sender = Sender(run.city, run.sensors, per_body=500)
        sender.rounds(readings // (500 * len(run.sensors)), timeout=1200)
        started = time.monotonic()
        for p in range(partitions):
            run.city.worker(p)
        first = None
        while len(rows := run.db.stored_readings()) < len(sender.acknowledged):
            if rows and first is None:
                first = time.monotonic()
            time.sleep(0.1)
        done = time.monotonic()
        first = first or started
        return len(sender.acknowledged) / (done - first), done - started
    finally:
        run.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=60.0, help="database outage, seconds")
    parser.add_argument("--readings", type=int, default=40_000, help="for the throughput runs")
    parser.add_argument("--skip-faults", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="civicguard-city-bench-"))
    setup_nats = NatsServer(root / "setup-nats").start()
    template = provisioned(root, setup_nats.url)
    try:
        if not args.skip_faults:
            rows = []
            faults: list[tuple[str, Callable[[Run], Callable[[Sender], float]]]] = [
                ("kill -9 worker-0, restart", kill_worker),
                ("nats-server restart", restart_nats),
                (
                    f"PostgreSQL unreachable {args.outage:.0f} s",
                    lambda r: database_away(r, args.outage),
                ),
            ]
            for name, make in faults:
                run = Run(root, template, name.split()[0].strip("-"))
                try:
                    run.start()
                    rows.append(fault_row(run, name, make(run)))
                finally:
                    run.close()
                print(rows[-1], flush=True)
            print_table(rows)
        for n in (1, 2):
            rate, total = throughput(root, template, n, args.readings)
            print(f"{n} worker(s): {rate:,.0f} readings/s draining {args.readings:,} "
                  f"({total:.1f} s including start-up)", flush=True)  # fmt: skip
    finally:
        template[0].drop()
        setup_nats.stop()
        shutil.rmtree(root, ignore_errors=True)


def print_table(rows: list[dict[str, object]]) -> None:
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()

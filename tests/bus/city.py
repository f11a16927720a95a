"""City-scale mode with real processes: nats-server, PostgreSQL, ``serve`` and ``worker`` s.

Nothing here imports pytest, so a longer fault harness can drive the same pieces:

- :class:`PgDatabase`: a uniquely named database on the local PostgreSQL server (created
  empty, or as a copy of another one), dropped at the end; counts what is stored.
- ``TcpProxy`` (from ``civicguard.benchmarks.processes``, which ``bench faults`` uses too): a
  TCP forwarder of our own between workers and PostgreSQL that can refuse connections for a
  while (the shared server itself cannot be stopped).
- :class:`CivicguardProcess`: one ``civicguard`` command as a child process, its output in a
  file, that can be killed (-9), stopped (SIGTERM) and started again.
- :class:`City`: all of it wired as the README's "Running it for real" says, plus a device
  client that posts readings over HTTP and keeps what was acknowledged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from tests.services import free_port, port_open

#: The local PostgreSQL server's admin URL (trust auth).
PG_ADMIN_URL = os.environ.get(
    "CIVICGUARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: The ``civicguard`` command of this environment.
CIVICGUARD = str(Path(sys.executable).with_name("civicguard"))


class PgDatabase:
    """A database of its own on the local PostgreSQL server, dropped by :meth:`drop`."""

    def __init__(self, admin_url: str = PG_ADMIN_URL, prefix: str = "civicguard_city") -> None:
        self.admin_url = admin_url
        self.name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        base, _, _ = admin_url.rpartition("/")
        self.url = f"{base}/{self.name}"
        parsed = httpx.URL(self.url.replace("postgresql://", "http://", 1))
        self.host = parsed.host or "127.0.0.1"
        self.port = parsed.port or 5432

    def create(self, template: PgDatabase | None = None) -> PgDatabase:
        """Create it empty, or as a copy of ``template`` (which nobody may be connected to)."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template.name))
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(statement)
        return self

    def drop(self) -> None:
        """Drop it, whoever is still connected."""
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )

    def url_via(self, host: str, port: int) -> str:
        """This database's URL through another address (a proxy)."""
        base, _, _ = self.admin_url.rpartition("@")
        return f"{base}@{host}:{port}/{self.name}"

    def query(self, statement: str) -> list[tuple[object, ...]]:
        """Rows of one read-only statement (an empty list if the schema is not there yet)."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as conn:
            try:
                return list(conn.execute(statement.encode()).fetchall())
            except psycopg.errors.UndefinedTable:
                return []

    def stored_readings(self) -> list[tuple[str, int]]:
        """``(device, seq)`` of every stored reading, one per row (duplicates would repeat)."""
        return [(str(d), int(s)) for d, s in self.query("SELECT device_id, seq FROM readings")]  # type: ignore[call-overload]

    def dead_letters(self) -> list[tuple[str, str, str]]:
        """``(reason, device, detail)`` of every stored dead letter."""
        rows = self.query("SELECT reason, coalesce(device_id, ''), detail FROM dead_letters")
        return [(str(r), str(d), str(t)) for r, d, t in rows]


class CivicguardProcess:
    """One ``civicguard`` command running as a child process, output kept in ``log``."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> CivicguardProcess:
        """Start the command (output appended to ``log``)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts}: civicguard {' '.join(self.args)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [CIVICGUARD, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it ended."""
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """kill -9."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then kill -9 if it lingers beyond ``timeout``; return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def output(self) -> str:
        """Everything the process wrote (all of its starts)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Sensor:
    """Where one device stands: its id, secret and next sequence number."""

    device_id: str
    secret: str
    next_seq: int = 1


@dataclass
class City:
    """nats-server, a PostgreSQL database, ``serve`` and ``worker`` processes, wired together.

    Every process shares ``data_dir`` (it holds the key store: device secrets are sealed with
    it, so ``serve`` and the workers need the same keys) and reaches the database at
    ``database_url``; workers reach it through ``worker_database_url`` (a proxy, say).
    """

    nats_url: str
    database_url: str
    data_dir: Path
    logs: Path
    partitions: int = 2
    worker_database_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    processes: list[CivicguardProcess] = field(default_factory=list)

    def env(self, *, database_url: str | None = None) -> dict[str, str]:
        """The environment of a civicguard process of this city."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICGUARD_", "PYTEST"))}
        env.update(
            CIVICGUARD_EVENT_LOG="nats",
            CIVICGUARD_NATS_URL=self.nats_url,
            CIVICGUARD_NATS_PARTITIONS=str(self.partitions),
            CIVICGUARD_DATABASE_URL=database_url or self.database_url,
            CIVICGUARD_DATA_DIR=str(self.data_dir),
            CIVICGUARD_RETENTION_INTERVAL="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    @property
    def url(self) -> str:
        """Base URL of ``serve``."""
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 120.0) -> str:
        """Run a civicguard command to its end; return its output (fail on a non-zero exit)."""
        done = subprocess.run(
            [CIVICGUARD, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"civicguard {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def provision(self, device_id: str, stream: str = "power.substation") -> Sensor:
        """Provision a device with the CLI; return it with its secret."""
        out = self.cli(
            "devices", "provision", device_id, "--stream", stream,
            "--lat", "21.8818", "--lon", "-102.2960", "--district", "Centro",
        )  # fmt: skip
        secret = out.split("not shown again):", 1)[1].split()[0]
        return Sensor(device_id, secret)

    def serve(self) -> CivicguardProcess:
        """Start ``civicguard serve`` (API and ingest)."""
        proc = CivicguardProcess(
            "serve",
            ["serve", "--host", "127.0.0.1", "--port", str(self.port)],
            self.env(),
            self.logs / "serve.log",
        ).start()
        self.processes.append(proc)
        return proc

    def worker(self, partition: int | None) -> CivicguardProcess:
        """Start ``civicguard worker --partition i`` (without the option for ``None``)."""
        args = ["worker"] if partition is None else ["worker", "--partition", str(partition)]
        name = "worker" if partition is None else f"worker-{partition}"
        proc = CivicguardProcess(
            name,
            args,
            self.env(database_url=self.worker_database_url or None),
            self.logs / f"{name}.log",
        ).start()
        self.processes.append(proc)
        return proc

    def wait_serving(self, serve: CivicguardProcess, timeout: float = 60.0) -> None:
        """Return once ``serve`` answers HTTP; fail with its output if it died."""
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            if not serve.alive:
                raise RuntimeError(f"serve exited {serve.returncode}:\n{serve.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"serve did not listen within {timeout} s:\n{serve.output()}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        """SIGTERM every process still running (kill -9 after a while)."""
        for proc in reversed(self.processes):
            proc.stop()

    def outputs(self) -> str:
        """The output of every process, one after another, to show when a test fails."""
        seen: set[Path] = set()
        parts = []
        for proc in self.processes:
            if proc.log in seen:
                continue
            seen.add(proc.log)
            parts.append(f"===== {proc.name} (exit {proc.returncode}) =====\n{proc.output()}")
        return "\n".join(parts)


@dataclass
class Sender:
    """Devices posting readings over HTTP; keeps exactly what ``serve`` acknowledged (2xx).

    A 503 is retried after its Retry-After, as a device does; a connection refused or reset is
    retried after a short pause. Anything else is a failure of the test.
    """

    city: City
    devices: list[Sensor]
    per_body: int = 50
    acknowledged: set[tuple[str, int]] = field(default_factory=set)
    unavailable: int = 0
    errors: list[str] = field(default_factory=list)
    #: Set to make :meth:`rounds` stop before its next body.
    stopping: threading.Event = field(default_factory=threading.Event)

    def body(self, device: Sensor) -> list[dict[str, object]]:
        """The next ``per_body`` readings of ``device`` (the clock's time, plausible values)."""
        now = time.time()
        first = device.next_seq
        device.next_seq += self.per_body
        return [
            {
                "seq": first + k,
                "ts": now - (self.per_body - k) * 0.01,
                "values": {"voltage": 11.0, "frequency": 50.0, "load": 20.0 + (k % 5)},
            }
            for k in range(self.per_body)
        ]

    def send(self, client: httpx.Client, device: Sensor, deadline: float) -> None:
        """Post one body, retrying as a device would, until acknowledged or ``deadline``."""
        readings = self.body(device)
        headers = {"Authorization": f"Bearer {device.secret}"}
        while time.monotonic() < deadline:
            try:
                response = client.post(
                    f"{self.city.url}/api/v1/ingest", json=readings, headers=headers
                )
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if response.status_code == 202:
                self.acknowledged.update((device.device_id, int(r["seq"])) for r in readings)  # type: ignore[call-overload]
                return
            if response.status_code == 503:
                self.unavailable += 1
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))
                continue
            self.errors.append(f"{response.status_code}: {response.text[:300]}")
            return
        self.errors.append(f"body of {device.device_id} not acknowledged before the deadline")

    def rounds(self, n: int, *, timeout: float = 120.0, between: float = 0.0) -> None:
        """``n`` rounds of one body from every device."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=30.0) as client:
            for _ in range(n):
                for device in self.devices:
                    if self.stopping.is_set():
                        return
                    self.send(client, device, deadline)
                if between:
                    time.sleep(between)

    def in_background(self, n: int, *, between: float = 0.0) -> threading.Thread:
        """Run :meth:`rounds` in a thread (join it to wait for the last answer)."""
        thread = threading.Thread(
            target=self.rounds, args=(n,), kwargs={"between": between}, daemon=True
        )
        thread.start()
        return thread


def wait_until_stored(
    db: PgDatabase, expected: int, *, timeout: float = 60.0, settle: float = 2.0
) -> list[tuple[str, int]]:
    """Poll until ``expected`` readings are stored and stay so for ``settle`` s; return them."""
    deadline = time.monotonic() + timeout
    rows = db.stored_readings()
    while time.monotonic() < deadline:
        rows = db.stored_readings()
        if len(rows) >= expected:
            time.sleep(settle)  # anything more arriving now would be a duplicate or a stray
            return db.stored_readings()
        time.sleep(0.2)
    return rows


@contextlib.contextmanager
def shown_on_failure(city: City) -> Iterator[None]:
    """Add every process's output to an assertion or error raised inside the block."""
    try:
        yield
    except BaseException as exc:
        note = f"process output:\n{city.outputs()}"
        exc.add_note(note[-20_000:])
        raise


@dataclass(frozen=True)
class ConsumerState:
    """What JetStream says of one durable consumer of the stream."""

    name: str
    filter_subject: str
    #: Deliveries it made (redeliveries included): more than 0 means it took a share.
    delivered: int
    #: Delivered and not acknowledged yet.
    ack_pending: int


def consumers(nats_url: str, stream: str = "CIVICGUARD") -> dict[str, ConsumerState]:
    """The stream's consumers by name, as ``nats consumer info`` would show them."""
    import asyncio

    import nats

    async def ask() -> dict[str, ConsumerState]:
        nc = await nats.connect(nats_url, connect_timeout=5)
        try:
            found = await nc.jetstream().consumers_info(stream)
        finally:
            await nc.close()
        return {
            c.name: ConsumerState(
                name=c.name,
                filter_subject=c.config.filter_subject or "",
                delivered=int(c.delivered.consumer_seq if c.delivered else 0),
                ack_pending=int(c.num_ack_pending or 0),
            )
            for c in found
        }

    return asyncio.run(ask())

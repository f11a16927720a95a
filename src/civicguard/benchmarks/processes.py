"""Real civicguard processes driven from outside, as an operator and a fleet of devices would.

Everything here goes through public interfaces only: the ``civicguard`` command line to
provision devices and to start ``serve`` and ``worker``, HTTP POST to ingest, and a read-only
look at the database to count what was stored. ``bench faults`` builds its rows from these
pieces, and quick fault tests can use them as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import orjson

CLI = Path(sys.executable).with_name("civicguard")
#: A site inside the demo city (Aguascalientes centro), where provisioned devices stand.
LAT, LON = 21.8818, -102.2960
#: The stream the fleet reports on: two numbers per reading, no personal data.
STREAM = "water.tank"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    """True if something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def platform_env(data_dir: Path, **settings: str | int | float) -> dict[str, str]:
    """This process's environment without any ``CIVICGUARD_*`` of its own, plus the data dir
    and ``settings`` (``port=8001`` becomes ``CIVICGUARD_PORT=8001``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICGUARD_")}
    env["CIVICGUARD_DATA_DIR"] = str(data_dir)
    env["CIVICGUARD_RETENTION_INTERVAL"] = "0"  # no sweep deletes what is being counted
    env |= {f"CIVICGUARD_{k.upper()}": str(v) for k, v in settings.items()}
    return env


@dataclass
class Proc:
    """One child process, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    _out: IO[bytes]

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self._out.close()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit (SIGKILL after ``timeout``); the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._out.close()
        return int(self.popen.returncode)

    def tail(self, chars: int = 2000) -> str:
        """The end of the process's output, to say why something did not work."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def last_error(self) -> str:
        """The last line of its output that names an error (else its last line), unboxed."""
        lines = [ln.strip(" │╭╰─╮╯┃") for ln in self.tail(20_000).splitlines()]
        lines = [ln for ln in lines if ln]
        errors = [ln for ln in lines if "Error:" in ln or "error:" in ln] or [
            ln for ln in lines if "rror" in ln and not ln.startswith("(Background")
        ]
        return (errors or lines or [""])[-1][:240]


def launch(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Proc:
    """Start ``args`` with ``env``, stdout and stderr appended to ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    out = log.open("ab")
    popen = subprocess.Popen(args, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    return Proc(name=name, popen=popen, log=log, _out=out)


def start_serve(env: Mapping[str, str], log_dir: Path, name: str = "serve") -> Proc:
    """``civicguard serve`` (port and data dir from ``env``)."""
    return launch(name, [str(CLI), "serve"], env, log_dir)


def start_worker(
    env: Mapping[str, str], partition: int, log_dir: Path, name: str | None = None
) -> Proc:
    """``civicguard worker --partition PARTITION``."""
    args = [str(CLI), "worker", "--partition", str(partition)]
    return launch(name or f"worker-{partition}", args, env, log_dir)


def wait_ready(url: str, proc: Proc, timeout: float = 90.0) -> None:
    """Wait until ``url``'s health endpoint answers 200; raise if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}): {proc.last_error()}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {timeout:.0f} s: {proc.last_error()}")


_SECRET = re.compile(r"secret \(.*?\):\s*(\S+)")


def provision(env: Mapping[str, str], device_id: str, stream: str = STREAM) -> str:
    """``civicguard devices provision``; the device's secret, read from what it prints."""
    done = subprocess.run(
        [str(CLI), "devices", "provision", device_id, "--stream", stream,
         "--lat", str(LAT), "--lon", str(LON)],
        env=dict(env) | {"COLUMNS": "400"}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    found = _SECRET.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"provisioning {device_id} failed: {done.stdout}{done.stderr}")
    return found.group(1)


# --- The fleet: bodies of readings, sent until answered, and what was acknowledged -------


Pair = tuple[str, int]


@dataclass
class Ledger:
    """What the devices sent and what the platform acknowledged, reading by reading."""

    acked: set[Pair] = field(default_factory=set)
    #: (monotonic time, pairs) of each 2xx answer, in order.
    answers: list[tuple[float, list[Pair]]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    #: (count, event) pairs: each event is set once that many readings were acknowledged.
    watches: list[tuple[int, threading.Event]] = field(default_factory=list)

    def record(self, status: str, pairs: list[Pair] | None = None) -> None:
        """Count an answer; with ``pairs``, the readings it acknowledged."""
        with self.lock:
            self.statuses[status] += 1
            if pairs is not None:
                self.acked.update(pairs)
                self.answers.append((time.monotonic(), pairs))
                for count, event in self.watches:
                    if len(self.acked) >= count:
                        event.set()

    def watch(self, count: int) -> threading.Event:
        """An event set the moment ``count`` readings have been acknowledged."""
        event = threading.Event()
        with self.lock:
            self.watches.append((count, event))
            if len(self.acked) >= count:
                event.set()
        return event

    def count(self) -> int:
        """Readings acknowledged so far."""
        with self.lock:
            return len(self.acked)

    def answers_between(self, start: float, end: float) -> list[tuple[float, list[Pair]]]:
        """The 2xx answers (time, acknowledged readings) from monotonic ``start`` to ``end``."""
        with self.lock:
            return [(t, p) for t, p in self.answers if start <= t <= end]


def body(device_id: str, first_seq: int, count: int, now: float) -> bytes:
    """``count`` readings of ``device_id`` numbered from ``first_seq``, as one JSON array."""
    del device_id  # the device is named by its credentials, not in the body
    return orjson.dumps(
        [
            {
                "seq": first_seq + i,
                "ts": round(now - (count - i) * 0.001, 3),
                "values": {"level": round(4.0 + (first_seq + i) % 97 * 0.01, 2), "inflow": 100.0},
            }
            for i in range(count)
        ]
    )


def acknowledged(device_id: str, seqs: range, answer: httpx.Response) -> list[Pair]:
    """The readings a 2xx answer acknowledged: those sent, less those it lists as refused."""
    refused = {r.get("seq") for r in answer.json().get("rejected", [])}
    return [(device_id, s) for s in seqs if s not in refused]


class Fleet:
    """Devices sending bodies of readings over HTTP, one body at a time, as devices do: a body
    not answered 2xx (no answer, a refused connection, a 5xx) is sent again, unchanged, until
    it is, and only then does the device move on to its next readings."""

    def __init__(
        self,
        url: str,
        secrets: Mapping[str, str],
        *,
        batch: int,
        retry_s: float = 0.2,
        probe: tuple[str, str] | None = None,
    ) -> None:
        """``secrets`` by device id; ``probe`` (id, secret): a device kept apart, which sends
        one reading when asked (:meth:`send_probe`) to see the platform take readings again."""
        self.url = url
        self.secrets = dict(secrets)
        self.batch = batch
        self.retry_s = retry_s
        self.probe = probe
        self.ledger = Ledger()
        self.next_seq = dict.fromkeys(self.secrets, 1)
        if probe is not None:
            self.next_seq[probe[0]] = 1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, total: int, deadline_s: float) -> None:
        """Send ``total`` readings in all, each device from a thread of its own (devices do
        not wait for one another)."""
        per_device = -(-total // len(self.secrets))
        deadline = time.monotonic() + deadline_s
        self._threads = [
            threading.Thread(target=self._run, args=(d, per_device, deadline), daemon=True)
            for d in self.secrets
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop sending (the bodies in flight are finished or abandoned)."""
        self._stop.set()
        self.join()

    def join(self, timeout: float | None = None) -> None:
        """Wait for every device to finish (at most ``timeout`` s in all)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            thread.join(left)

    def done(self) -> bool:
        """True once every device has stopped."""
        return not any(t.is_alive() for t in self._threads)

    def _run(self, device: str, per_device: int, deadline: float) -> None:
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self.next_seq[device] > per_device:
                    return
                count = min(self.batch, per_device - self.next_seq[device] + 1)
                self._send_until_answered(client, device, count, deadline)

    def send_probe(self, within_s: float = 120.0) -> list[Pair]:
        """One reading of the probe device, sent until answered 2xx; what was acknowledged
        (empty if nothing was within ``within_s``)."""
        if self.probe is None:
            raise ValueError("this fleet has no probe device")
        device = self.probe[0]
        before = self.next_seq[device]
        with httpx.Client(timeout=30.0) as client:
            self._send_until_answered(client, device, 1, time.monotonic() + within_s)
        return [(device, before)] if self.next_seq[device] > before else []

    def _secret(self, device: str) -> str:
        if self.probe is not None and device == self.probe[0]:
            return self.probe[1]
        return self.secrets[device]

    def _send_until_answered(
        self, client: httpx.Client, device: str, count: int, deadline: float
    ) -> None:
        first = self.next_seq[device]
        payload = body(device, first, count, time.time())
        headers = {
            "Authorization": f"Bearer {self._secret(device)}",
            "Content-Type": "application/json",
        }
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                answer = client.post(f"{self.url}/api/v1/ingest", content=payload, headers=headers)
            except httpx.HTTPError as exc:
                self.ledger.record(type(exc).__name__)
                time.sleep(self.retry_s)
                continue
            status = answer.status_code
            if 200 <= status < 300:
                self.ledger.record(
                    str(status), acknowledged(device, range(first, first + count), answer)
                )
                self.next_seq[device] = first + count
                return
            self.ledger.record(str(status))
            if status in (429, 500, 502, 503, 504):
                time.sleep(self.retry_s)
                continue
            self.next_seq[device] = first + count  # refused for good: the device moves on
            return


# --- What the store holds ----------------------------------------------------------------


def stored_pairs(database: str | Path) -> list[Pair]:
    """Every stored reading's (device, seq), one per row, read without writing anything.

    ``database`` is a SQLite file (opened read-only) or a PostgreSQL URL.
    """
    if isinstance(database, Path):
        if not database.exists():
            return []
        uri = f"file:{database}?mode=ro"
        # closing(): a sqlite3 connection's own context manager commits but never closes,
        # and an open file would keep the disk of the read-only row from being unmounted.
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
            return [
                (str(d), int(s)) for d, s in conn.execute("SELECT device_id, seq FROM readings")
            ]
    import psycopg

    url = database.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.read_only = True
        rows = conn.execute("SELECT device_id, seq FROM readings").fetchall()
    return [(str(d), int(s)) for d, s in rows]


@dataclass(frozen=True, slots=True)
class Tally:
    """Acknowledged readings against stored ones."""

    acknowledged: int
    #: Rows of readings in the store.
    stored: int
    #: Acknowledged and not stored.
    lost: int
    #: Rows beyond the first of one (device, seq).
    duplicated: int


def tally(acked: Iterable[Pair], rows: Iterable[Pair]) -> Tally:
    """Lost: acknowledged readings with no row; duplicated: rows beyond one per (device, seq).

    >>> tally([("a", 1), ("a", 2), ("b", 1)], [("a", 1), ("a", 1), ("b", 1), ("b", 2)])
    Tally(acknowledged=3, stored=4, lost=1, duplicated=1)
    """
    acked_set = set(acked)
    per_pair = Counter(rows)
    return Tally(
        acknowledged=len(acked_set),
        stored=sum(per_pair.values()),
        lost=sum(1 for p in acked_set if p not in per_pair),
        duplicated=sum(n - 1 for n in per_pair.values()),
    )


def settle(
    count: Callable[[], int], *, want: int, quiet_s: float = 3.0, timeout_s: float = 60.0
) -> int:
    """Poll ``count`` until it reaches ``want`` or stays the same for ``quiet_s``; the last
    count. A count that fails (the database away) is tried again until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            now = count()
        except Exception:
            time.sleep(0.5)
            continue
        if now >= want:
            return now
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
        time.sleep(0.25)
    return max(last, 0)


def wait_stored(
    database: str | Path, pairs: Iterable[Pair], timeout_s: float = 120.0
) -> float | None:
    """Monotonic time at which every one of ``pairs`` was in the store, or ``None``."""
    wanted = set(pairs)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if wanted <= set(stored_pairs(database)):
                return time.monotonic()
        except Exception:  # the store may be unreachable for a while: ask again
            time.sleep(0.2)
            continue
        time.sleep(0.2)
    return None


# --- Servers of the harness's own ---------------------------------------------------------


def require(binary: str) -> str:
    """The path of ``binary`` or a RuntimeError naming it."""
    for candidate in (shutil.which(binary), f"/usr/sbin/{binary}", f"/usr/bin/{binary}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"the {binary} binary is not installed")


class NatsServer:
    """A nats-server of our own with JetStream, on a free port, its store in ``store_dir``."""

    def __init__(self, store_dir: Path, log_dir: Path) -> None:
        self.binary = require("nats-server")
        self.store_dir = store_dir
        self.log_dir = log_dir
        self.port = free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it accepts clients."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1",
                "-p", str(self.port)]  # fmt: skip
        self.proc = launch("nats-server", args, os.environ, self.log_dir)
        deadline = time.monotonic() + 15
        while not port_open(self.port):
            if not self.proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {self.proc.tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (JetStream flushes its store), then SIGKILL if it lingers."""
        if self.proc is not None:
            self.proc.terminate(timeout=15)
            self.proc = None


class TcpProxy:
    """A TCP relay of our own between clients and a server, that can be closed and opened.

    Closed, it refuses new connections and cuts the open ones, as a network outage would.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        """Listen and relay."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _shut(listener)
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _shut(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    _shut(client)
                    _shut(server)
                    return
                self._conns |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                _shut(s)
            with self._lock:
                self._conns -= {source, sink}


def _shut(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def create_database(name: str, admin_url: str = PG_ADMIN) -> str:
    """Create database ``name`` on the local PostgreSQL; its URL (for civicguard)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(name: str, admin_url: str = PG_ADMIN) -> None:
    """Drop database ``name`` whoever is still connected."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def with_port(url: str, port: int) -> str:
    """``url`` with its host's port replaced by ``port`` (to go through a proxy)."""
    return re.sub(r"@([^/:]+)(:\d+)?/", lambda m: f"@{m.group(1)}:{port}/", url, count=1)

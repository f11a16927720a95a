"""``civicguard bench faults``: real processes, real faults, and what the devices lost.

Each row starts its own platform (its own data dir; at city scale its own nats-server,
PostgreSQL database and TCP proxy), provisions a small fleet with the command line, sends
readings over HTTP as devices do (a body not answered 2xx is sent again, unchanged), injects
one fault mid-stream, clears it, lets everything settle and counts what the database holds
(a first row injects nothing, to show what the same run stores without a fault):

* acknowledged: readings answered 2xx (and not listed as refused in the answer);
* stored: rows of readings in the database;
* lost: acknowledged and not stored;
* duplicated: rows beyond the first of one (device, seq);
* recovery: from the fault's clearing (process killed and restarted at once, server back,
  disk writable again) until a reading that a probe device sends from then on, again and
  again until it is answered 2xx, is in the database.

At city scale every civicguard process (``serve`` and the workers) reaches PostgreSQL through
a TCP proxy of the harness's own, which the outage row closes (refusing new connections and
cutting open ones) for ``--db-outage`` seconds; the harness counts through a connection of its
own, straight to PostgreSQL. The goal is 0 lost and 0 duplicated in every row.

The read-only disk is a loop-mounted ext4 image turned read-only under the running process
through ext4's own error path (``/sys/fs/ext4/<dev>/trigger_fs_error`` with
``errors=remount-ro``, after a ``sync``: a mount point that has files open for writing cannot be
remounted read-only by hand); it is repaired by stopping ``serve``, unmounting, ``e2fsck`` and
mounting again. The full disk is a small tmpfs filled by a file of ours, deleted to clear the
fault. Both need root, and are skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from civicguard.benchmarks.processes import (
    Fleet,
    NatsServer,
    Proc,
    Tally,
    TcpProxy,
    create_database,
    drop_database,
    free_port,
    platform_env,
    provision,
    settle,
    start_serve,
    start_worker,
    stored_pairs,
    tally,
    wait_ready,
    wait_stored,
    with_port,
)

NO_FAULT = "no fault (control)"
SERVE_KILL = "serve kill -9"
SERVE_TERM = "serve SIGTERM"
DISK_FULL = "SQLite disk full"
DISK_READ_ONLY = "SQLite disk read-only"
CITY_SERVE_KILL = "city: serve kill -9"
CITY_WORKER_KILL = "city: worker kill -9"
CITY_NATS_RESTART = "city: nats-server restart"
CITY_DB_OUTAGE = "city: PostgreSQL unreachable"
EMBEDDED_ROWS = (NO_FAULT, SERVE_KILL, SERVE_TERM, DISK_FULL, DISK_READ_ONLY)
CITY_ROWS = (CITY_SERVE_KILL, CITY_WORKER_KILL, CITY_NATS_RESTART, CITY_DB_OUTAGE)
ROWS = EMBEDDED_ROWS + CITY_ROWS
PARTITIONS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSettings:
    """How much each row sends and how long its faults last."""

    readings: int = 20_000
    batch: int = 1_000
    devices: int = 4
    #: How long a full or read-only disk stays so while the fleet keeps sending.
    disk_fault_s: float = 5.0
    #: How long PostgreSQL is unreachable through the proxy.
    db_outage_s: float = 60.0
    #: The longest a row may send for (the fleet gives up on what is unanswered by then).
    send_limit_s: float = 300.0
    #: The longest the count may take to settle after sending.
    settle_s: float = 180.0
    #: The count has settled when it has not moved for this long (a slow pipeline stores
    #: in steps; stopping it while it still works would count its backlog as lost).
    quiet_s: float = 15.0
    #: The same at city scale: longer than JetStream's ack wait (30 s), after which a message
    #: taken and never acknowledged is delivered again.
    city_quiet_s: float = 45.0


@dataclass(frozen=True, slots=True)
class Row:
    """One fault's outcome; ``tally`` is None when the row could not run (``note`` says why)."""

    fault: str
    tally: Tally | None
    recovery_s: float | None
    note: str = ""


@dataclass
class _Run:
    """The processes of one row, by name; every one still alive is stopped at the end."""

    procs: dict[str, Proc] = field(default_factory=dict)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.terminate(timeout=20)


def _start_and_wait_half(fleet: Fleet, settings: FaultSettings) -> None:
    """Start the fleet and return the moment half its readings are acknowledged: the fault
    comes right after an answer, while what was just acknowledged may still be on its way."""
    half = fleet.ledger.watch(settings.readings // 2)
    fleet.start(settings.readings, settings.send_limit_s)
    while not half.wait(0.05) and not fleet.done():
        pass


def _recovery(fleet: Fleet, database: str | Path, cleared: float) -> float | None:
    """Seconds from ``cleared`` until a reading the probe device sent after it is stored."""
    pairs = fleet.send_probe(within_s=120.0)
    if not pairs:
        return None
    stored_at = wait_stored(database, pairs, timeout_s=120.0)
    return None if stored_at is None else stored_at - cleared


def _finish(
    fault: str,
    fleet: Fleet,
    database: str | Path,
    window: tuple[float, float],
    run: _Run,
    settings: FaultSettings,
) -> Row:
    """Measure recovery, let the sending end, settle, stop everything and count.

    ``window``: monotonic times the fault began and cleared. Readings acknowledged within it
    are named in the note: a full or read-only disk should answer 503, not 202.
    """
    began, cleared = window
    during = sum(len(p) for t, p in fleet.ledger.answers_between(began, cleared))
    recovery = _recovery(fleet, database, cleared)
    fleet.join(settings.send_limit_s)
    fleet.stop()
    acked = fleet.ledger.acked
    died = [
        f"{p.name} exited ({p.popen.returncode}): {p.last_error()}"
        for p in run.procs.values()
        if not p.alive()
    ]

    def count() -> int:
        return len(stored_pairs(database))

    quiet = settings.quiet_s if fault in EMBEDDED_ROWS else settings.city_quiet_s
    settle(count, want=len(acked), quiet_s=quiet, timeout_s=settings.settle_s)
    run.stop_all()
    notes = [f"{during:,} acknowledged during the fault"] if during else []
    note = "; ".join(notes + died) if fleet.ledger.count() else "nothing acknowledged"
    return Row(fault, tally(acked, stored_pairs(database)), recovery, note)


# --- Embedded mode ------------------------------------------------------------------------


def _fleet(env: dict[str, str], url: str, settings: FaultSettings) -> Fleet:
    """The row's devices and its probe, provisioned with the command line."""
    secrets = {f"tank-{i}": provision(env, f"tank-{i}") for i in range(settings.devices)}
    probe = ("probe-0", provision(env, "probe-0"))
    return Fleet(url, secrets, batch=settings.batch, probe=probe)


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted at ``path`` (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)])
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=60)


def fill(path: Path) -> Path:
    """Write a file at ``path`` until its disk is full; the file (delete it to free space)."""
    chunk = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as out:
        for size in (len(chunk), 4096, 1):
            with contextlib.suppress(OSError):
                while out.write(chunk[:size]):
                    pass
    return path


@dataclass
class Ext4Image:
    """An ext4 file system in an image file, loop-mounted with ``errors=remount-ro``."""

    image: Path
    mount: Path
    size_mb: int = 256

    def create(self) -> None:
        """Make and mount the file system (root only)."""
        with self.image.open("wb") as f:
            f.truncate(self.size_mb << 20)
        _run(["mkfs.ext4", "-q", "-F", str(self.image)])
        self.mount.mkdir(parents=True, exist_ok=True)
        self.attach()

    def attach(self) -> None:
        """Mount the image."""
        _run(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mount)])

    def device(self) -> str:
        """The loop device's name (``loop3``)."""
        out = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(self.mount)],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        return Path(out.stdout.strip()).name

    def make_read_only(self) -> None:
        """Turn the mounted file system read-only under whoever has files open on it.

        What was written before is flushed first, so that the fault is the disk turning
        read-only and not also the loss of what the page cache held.
        """
        os.sync()
        trigger = Path("/sys/fs/ext4") / self.device() / "trigger_fs_error"
        trigger.write_text("bench faults: disk made read-only\n")

    def repair(self) -> None:
        """Unmount, check and mount again: the disk is writable from then on."""
        _run(["umount", str(self.mount)])
        done = subprocess.run(
            ["e2fsck", "-fy", str(self.image)], check=False, capture_output=True, timeout=120
        )
        if done.returncode not in (0, 1, 2):
            raise RuntimeError(f"e2fsck failed: {done.stdout!r}")
        self.attach()

    def remove(self) -> None:
        """Unmount (lazily if something still holds it) and delete the image."""
        done = subprocess.run(["umount", str(self.mount)], check=False, capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.mount)], check=False, capture_output=True)
        self.image.unlink(missing_ok=True)


def _disk_skip(fault: str) -> str | None:
    """Why this machine cannot play ``fault`` (None if it can)."""
    if fault not in (DISK_FULL, DISK_READ_ONLY):
        return None
    if os.geteuid() != 0:
        return "needs root (mounts a file system of its own)"
    if fault == DISK_READ_ONLY and not Path("/sys/fs/ext4").is_dir():
        return "no ext4 in this kernel (/sys/fs/ext4 missing)"
    return None


def _inject_embedded(
    fault: str,
    run: _Run,
    disk: Ext4Image | None,
    data_dir: Path,
    settings: FaultSettings,
    restart: Callable[[], Proc],
    url: str,
) -> float:
    """Inject ``fault`` into the running ``serve``, clear it; the monotonic time it cleared."""

    def restart_serve() -> None:
        run.procs["serve"] = restart()
        wait_ready(url, run.procs["serve"])

    if fault == NO_FAULT:
        cleared = time.monotonic()
    elif fault == SERVE_KILL:
        run.procs["serve"].kill9()
        cleared = time.monotonic()
        restart_serve()
    elif fault == SERVE_TERM:
        run.procs["serve"].terminate()
        cleared = time.monotonic()
        restart_serve()
    elif fault == DISK_FULL:
        filler = fill(data_dir.parent / "filler")
        time.sleep(settings.disk_fault_s)
        filler.unlink()
        cleared = time.monotonic()
    elif fault == DISK_READ_ONLY and disk is not None:
        disk.make_read_only()
        time.sleep(settings.disk_fault_s)
        run.procs["serve"].terminate()  # the operator stops it to repair the disk
        disk.repair()
        cleared = time.monotonic()
        restart_serve()
    else:
        raise ValueError(f"not an embedded fault: {fault}")
    return cleared


def embedded_row(fault: str, base: Path, settings: FaultSettings) -> Row:
    """One embedded-mode row: ``serve`` on SQLite, ``fault`` mid-stream."""
    skip = _disk_skip(fault)
    if skip is not None:
        return Row(fault, None, None, f"skipped: {skip}")
    logs = base / "logs"
    run = _Run()
    with ExitStack() as stack:
        disk: Ext4Image | None = None
        if fault == DISK_FULL:
            data_dir = stack.enter_context(small_tmpfs(base / "disk", 96)) / "data"
        elif fault == DISK_READ_ONLY:
            disk = Ext4Image(base / "disk.img", base / "disk")
            disk.create()
            stack.callback(disk.remove)
            data_dir = disk.mount / "data"
        else:
            data_dir = base / "data"
        stack.callback(run.stop_all)  # before the disk goes (callbacks run last first)
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = platform_env(data_dir, port=port)
        database = data_dir / "civicguard.db"
        fleet = _fleet(env, url, settings)
        run.procs["serve"] = start_serve(env, logs)
        wait_ready(url, run.procs["serve"])
        _start_and_wait_half(fleet, settings)

        began = time.monotonic()
        cleared = _inject_embedded(
            fault, run, disk, data_dir, settings, lambda: start_serve(env, logs), url
        )
        return _finish(fault, fleet, database, (began, cleared), run, settings)
    raise AssertionError("unreachable")


# --- City scale ---------------------------------------------------------------------------


def _inject_city(
    fault: str,
    run: _Run,
    nats: NatsServer,
    proxy: TcpProxy,
    settings: FaultSettings,
    serve_env: dict[str, str],
    worker_env: dict[str, str],
    url: str,
) -> float:
    """Inject ``fault`` at city scale, clear it; the monotonic time it cleared."""
    logs = run.procs["serve"].log.parent
    if fault == CITY_SERVE_KILL:
        run.procs["serve"].kill9()
        cleared = time.monotonic()
        run.procs["serve"] = start_serve(serve_env, logs)
        wait_ready(url, run.procs["serve"])
    elif fault == CITY_WORKER_KILL:
        run.procs["worker-0"].kill9()
        cleared = time.monotonic()
        run.procs["worker-0"] = start_worker(worker_env, 0, logs)
    elif fault == CITY_NATS_RESTART:
        nats.stop()
        nats.start()
        cleared = time.monotonic()
    elif fault == CITY_DB_OUTAGE:
        proxy.close()
        time.sleep(settings.db_outage_s)
        proxy.open()
        cleared = time.monotonic()
    else:
        raise ValueError(f"not a city-scale fault: {fault}")
    return cleared


def city_row(fault: str, base: Path, settings: FaultSettings) -> Row:
    """One city-scale row: NATS JetStream, PostgreSQL, ``serve`` and 2 partition workers."""
    logs = base / "logs"
    run = _Run()
    name = f"civicguard_faults_{uuid.uuid4().hex[:10]}"
    with ExitStack() as stack:
        database = create_database(name)
        stack.callback(drop_database, name)
        nats = NatsServer(base / "nats", logs)
        nats.start()
        stack.callback(nats.stop)
        proxy = TcpProxy(5432)
        proxy.open()
        stack.callback(proxy.close)
        stack.callback(run.stop_all)
        common: dict[str, str | int | float] = {
            "event_log": "nats",
            "nats_url": nats.url,
            "nats_partitions": PARTITIONS,
        }
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        data_dir = base / "data"
        # Every civicguard process reaches PostgreSQL through the proxy; the count goes direct.
        through_proxy = with_port(database, proxy.port)
        serve_env = platform_env(data_dir, port=port, database_url=through_proxy, **common)
        worker_env = platform_env(data_dir, database_url=through_proxy, **common)
        fleet = _fleet(serve_env, url, settings)
        run.procs["serve"] = start_serve(serve_env, logs)
        wait_ready(url, run.procs["serve"])
        for i in range(PARTITIONS):
            run.procs[f"worker-{i}"] = start_worker(worker_env, i, logs)
        time.sleep(2.0)
        dead = [p.name for p in run.procs.values() if not p.alive()]
        if dead:
            return Row(fault, None, None, f"{', '.join(dead)} exited at start")
        _start_and_wait_half(fleet, settings)
        began = time.monotonic()
        cleared = _inject_city(fault, run, nats, proxy, settings, serve_env, worker_env, url)
        row = _finish(fault, fleet, database, (began, cleared), run, settings)
        if fault == CITY_DB_OUTAGE:
            row = Row(f"{fault} {settings.db_outage_s:g} s", row.tally, row.recovery_s, row.note)
        return row
    raise AssertionError("unreachable")


# --- The table ----------------------------------------------------------------------------


def run_row(fault: str, base: Path, settings: FaultSettings) -> Row:
    """Play one row in ``base`` (its own folder); an error becomes the row's note."""
    base.mkdir(parents=True, exist_ok=True)
    play: Callable[[str, Path, FaultSettings], Row] = (
        embedded_row if fault in EMBEDDED_ROWS else city_row
    )
    try:
        return play(fault, base, settings)
    except Exception as exc:
        return Row(fault, None, None, f"did not run: {type(exc).__name__}: {str(exc)[:300]}")


def table(rows: list[Row]) -> Table:
    """The rows as the bench prints them."""
    out = Table(title="Faults: readings acknowledged (2xx) against readings stored")
    out.add_column("fault", no_wrap=True)
    for column in ("acknowledged", "stored", "lost", "duplicated", "recovery (s)"):
        out.add_column(column, justify="right", no_wrap=True)
    out.add_column("note", overflow="fold")
    for row in rows:
        t = row.tally
        figures = (
            [f"{t.acknowledged:,}", f"{t.stored:,}", f"{t.lost:,}", f"{t.duplicated:,}"]
            if t is not None
            else ["-"] * 4
        )
        recovery = "-" if row.recovery_s is None else f"{row.recovery_s:.1f}"
        out.add_row(row.fault, *figures, recovery, row.note)
    return out


def run_faults_benchmark(
    rows: tuple[str, ...], workdir: Path, settings: FaultSettings, console: Console | None = None
) -> list[Row]:
    """Play ``rows`` one after another, printing each as it ends and the table at the end."""
    console = console or Console()
    done: list[Row] = []
    for i, fault in enumerate(rows):
        console.print(f"[{i + 1}/{len(rows)}] {fault} ...")
        started = time.monotonic()
        row = run_row(fault, workdir / f"row-{i}", settings)
        t = row.tally
        summary = row.note if t is None else f"lost {t.lost}, duplicated {t.duplicated}"
        console.print(f"    {summary} ({time.monotonic() - started:.0f} s)")
        done.append(row)
    console.print(table(done))
    console.print("goal: 0 lost and 0 duplicated in every row")
    return done

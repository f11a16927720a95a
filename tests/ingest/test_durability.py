"""Acknowledged means durable, in embedded mode: ``civicguard serve`` as an operator runs it.

Every test here starts real ``serve`` processes on a data directory, sends readings over HTTP as
a device does, and hurts the server right after its last answer (SIGTERM, kill -9) or fills its
disk. What was answered 202 must be stored exactly once after a restart; what could not be made
durable must be answered 503 with Retry-After, never 202.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from tests.bus.small_disk import fill, small_disk
from tests.services import free_port

CLI = str(Path(sys.executable).with_name("civicguard"))
DEVICE = "aq-durable-1"
#: Readings per body: the demo catalog's batch limit.
PER_BODY = 5_000
BODIES = 4


DEMO_CATALOG = Path(__file__).resolve().parents[2] / "src/civicguard/catalog/demo_city.yaml"


def catalog_for(data_dir: Path) -> Path:
    """The demo city's catalog with room for 5,000 full air-quality readings in one body."""
    path = data_dir.parent / "catalog.yaml"
    if not path.exists():
        text = DEMO_CATALOG.read_text()
        assert "max_payload_bytes: 262144" in text
        path.write_text(text.replace("max_payload_bytes: 262144", "max_payload_bytes: 1048576"))
    return path


def _env(data_dir: Path) -> dict[str, str]:
    return os.environ | {"COLUMNS": "200", "CIVICGUARD_CATALOG": str(catalog_for(data_dir))}


def _cli(*args: str, data_dir: Path) -> str:
    done = subprocess.run(
        [CLI, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=_env(data_dir),
    )
    return done.stdout


def provision(data_dir: Path) -> str:
    """Provision the test's air-quality device with the CLI; its secret."""
    out = _cli(
        "devices",
        "provision",
        DEVICE,
        "--stream",
        "air.quality",
        "--lat",
        "21.88",
        "--lon",
        "-102.29",
        data_dir=data_dir,
    )
    return out.split("shown again): ")[1].split()[0]


class Serve:
    """``civicguard serve`` on ``data_dir`` and a free port, as a child process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data_dir.parent / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen(
            [CLI, "serve", "--data-dir", str(data_dir), "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=_env(data_dir),
        )
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, "serve did not answer within 90 s"
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)

    def output(self) -> str:
        """What the server printed so far."""
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig: int, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the process to end; its exit code."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log.close()


@contextmanager
def serving(data_dir: Path) -> Iterator[Serve]:
    """A server for the ``with`` block; killed at the end if the block left it running."""
    server = Serve(data_dir)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=30)
        server.log.close()


def bodies(count: int = BODIES, *, value: float = 12.0) -> list[bytes]:
    """``count`` bodies of ``PER_BODY`` readings, seq 1.. in order, times in the last hours."""
    start = int(time.time()) - count * PER_BODY - 60
    out = []
    for b in range(count):
        first = b * PER_BODY + 1
        items = [
            {"seq": s, "ts": start + s, "values": {"pm25": 9, "pm10": 20, "no2": value}}
            for s in range(first, first + PER_BODY)
        ]
        out.append(orjson.dumps(items))
    return out


def brief(answer: httpx.Response) -> str:
    """An answer's status and the start of its body, for assertion messages."""
    return f"{answer.status_code} {answer.text[:300]}"


def post(server: Serve, secret: str, body: bytes) -> httpx.Response:
    """One body as the device sends it."""
    return httpx.post(
        f"{server.url}/api/v1/ingest",
        content=body,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        timeout=60,
    )


def _count(data_dir: Path, sql: str) -> tuple[int, int]:
    db = sqlite3.connect(f"file:{data_dir / 'civicguard.db'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(sql, (DEVICE,)).fetchone()
        return int(row[0]), int(row[1])
    finally:
        db.close()


def stored_readings(data_dir: Path) -> tuple[int, int]:
    """Readings of the test device in the database: (rows, distinct seq)."""
    return _count(
        data_dir, "SELECT count(*), count(DISTINCT seq) FROM readings WHERE device_id = ?"
    )


def stored_dead_letters(data_dir: Path) -> tuple[int, int]:
    """Dead letters of the test device: (rows, distinct seq)."""
    return _count(
        data_dir, "SELECT count(*), count(DISTINCT seq) FROM dead_letters WHERE device_id = ?"
    )


def settled(read: Callable[[], tuple[int, int]], want: int, timeout: float = 90) -> tuple[int, int]:
    """Poll ``read`` until it reaches ``want`` and stays there for a second, or stops moving."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > (1.0 if now[0] >= want else 15.0):
            break
    return last


def send_all(server: Serve, secret: str) -> None:
    """Send every body; each must be answered 202 with all its readings accepted."""
    for body in bodies():
        answer = post(server, secret, body)
        assert answer.status_code == 202, brief(answer)
        assert answer.json()["accepted"] == PER_BODY, brief(answer)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_every_acknowledged_reading_is_stored_once_after_a_stop(tmp_path: Path, sig: int) -> None:
    data = tmp_path / "data"
    secret = provision(data)
    with serving(data) as server:
        send_all(server, secret)
        code = server.stop(sig)
        if sig == signal.SIGTERM:
            assert code == 0, server.output()  # a graceful stop, not death by the signal
            # Shutdown drains (bounded at 10 s; 20,000 readings take far less).
            assert stored_readings(data) == (BODIES * PER_BODY,) * 2, server.output()
    with serving(data) as server:
        rows, distinct = settled(lambda: stored_readings(data), BODIES * PER_BODY)
        assert rows == distinct == BODIES * PER_BODY, server.output()[-3000:]
        assert server.stop(signal.SIGTERM) == 0, server.output()


def test_a_refusal_redelivered_after_kill_9_is_one_dead_letter(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secret = provision(data)
    refused = bodies(value=99_999.0)  # no2 above its physical range: every reading refused
    with serving(data) as server:
        for body in refused:
            answer = post(server, secret, body)
            assert answer.status_code == 422, brief(answer)
            assert len(answer.json()["rejected"]) == PER_BODY
        # Kill it while it stores what it refused, so some is stored and not yet acknowledged.
        deadline = time.monotonic() + 30
        while stored_dead_letters(data)[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(signal.SIGKILL)
    with serving(data) as server:
        rows, distinct = settled(lambda: stored_dead_letters(data), BODIES * PER_BODY)
        assert rows == distinct == BODIES * PER_BODY, server.output()[-3000:]


def test_a_full_disk_is_answered_503_and_the_retry_is_stored(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        secret = provision(data)
        body = bodies(1)[0]
        with serving(data) as server:
            filler = fill(disk)
            for _ in range(3):
                answer = post(server, secret, body)
                assert answer.status_code == 503, brief(answer)
                assert int(answer.headers["Retry-After"]) > 0
                assert answer.json()["reason"] == "unavailable"
                assert answer.json()["detail"]
            filler.unlink()
            # The device retries the same body: the sequence guard must let it through.
            answer = post(server, secret, body)
            assert answer.status_code == 202, brief(answer)
            assert answer.json()["accepted"] == PER_BODY
            rows, distinct = settled(lambda: stored_readings(data), PER_BODY)
            assert rows == distinct == PER_BODY
            assert server.stop(signal.SIGTERM) == 0, server.output()


def test_replay_beside_serve_leaves_the_processing_to_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    provision(data)
    start = int(time.time()) - 600
    lines = [
        orjson.dumps(
            {
                "device": DEVICE,
                "seq": s,
                "ts": start + s,
                "values": {"pm25": 9, "pm10": 20, "no2": 30},
            }
        )
        for s in range(1, 301)
    ]
    file = tmp_path / "readings.jsonl"
    file.write_bytes(b"\n".join(lines) + b"\n")
    with serving(data) as server:
        replayed = subprocess.run(
            [CLI, "replay", str(file), "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=_env(data),
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        # replay put its readings in the shared durable log and left; serve stores them.
        assert settled(lambda: stored_readings(data), 300) == (300, 300), server.output()
        assert server.stop(signal.SIGTERM) == 0, server.output()

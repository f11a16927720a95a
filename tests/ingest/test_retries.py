"""Retries and replays over HTTP against a real ``civicguard serve``, restarted in between.

A device that retries a body after a time-out must see every reading of the retry counted as a
duplicate, stored once, with no alert and no dead letter, whatever the body's size up to the
catalog's batch limit. A sequence number re-sent with other content is refused as a replay and
alerted, inside the replay window or below it, before and after a restart of the process, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql

from tests.services import free_port, unavailable

CLI = str(Path(sys.executable).with_name("civicguard"))
DEMO_CATALOG = Path(str(files("civicguard.catalog").joinpath("demo_city.yaml")))
PG_ADMIN_URL = os.environ.get(
    "CIVICGUARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DEVICE = "sub-retry-7"
AUDITOR_PASSWORD = "auditor pw for the retry tests"
#: The demo catalog's batch limit (written here, not read from the code).
BATCH_LIMIT = 5000


class Serve:
    """``civicguard serve`` on a data directory (and database), startable and stoppable."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.secret = ""

    def provision(self) -> None:
        """Through the API as the first admin: a substation device and an auditor account."""
        password = (self.data_dir / "initial-admin-password").read_text().strip()
        admin = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"username": "admin", "password": password}
        )
        assert admin.status_code == 200, admin.text
        headers = {"Authorization": f"Bearer {admin.json()['token']}"}
        device = httpx.post(
            f"{self.url}/api/v1/devices",
            json={"id": DEVICE, "stream": "power.substation", "lat": 21.8818, "lon": -102.2916},
            headers=headers,
        )
        assert device.status_code == 201, device.text
        self.secret = device.json()["secret"]
        auditor = httpx.post(
            f"{self.url}/api/v1/users",
            json={"username": "auditor-1", "password": AUDITOR_PASSWORD, "role": "auditor"},
            headers=headers,
            timeout=30,
        )
        assert auditor.status_code == 201, auditor.text

    def start(self) -> None:
        """Start serve and wait until it answers; sign the auditor in."""
        self.process = subprocess.Popen(
            [CLI, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "serve exited while starting"
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        if not self.secret:
            self.provision()
        login = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"username": "auditor-1", "password": AUDITOR_PASSWORD},
        )
        assert login.status_code == 200, login.text
        self.token = login.json()["token"]

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; wait for the exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def post(self, readings: list[dict[str, Any]]) -> httpx.Response:
        """One body of readings, sent as the device."""
        return httpx.post(
            f"{self.url}/api/v1/ingest",
            content=orjson.dumps(readings),
            headers={"Authorization": f"Bearer {self.secret}"},
            timeout=60,
        )

    def get(self, path: str, **params: Any) -> Any:
        """A staff endpoint's JSON, as the auditor."""
        response = httpx.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def stored(self) -> int:
        """Readings of the substation stream in the database (the DPO overview's figure)."""
        overview = self.get("/api/v1/dpo/overview")
        (stream,) = [s for s in overview["streams"] if s["name"] == "power.substation"]
        return int(stream["stored"]["readings"])

    def wait_stored(self, expected: int) -> None:
        """Wait until ``expected`` readings are stored (fail if it stays short or overshoots)."""
        deadline = time.monotonic() + 60
        while (got := self.stored()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got == expected

    def replay_alerts(self) -> list[dict[str, Any]]:
        """Alerts raised by the replay detector."""
        alerts: list[dict[str, Any]] = self.get("/api/v1/alerts", limit=1000)
        return [a for a in alerts if a["detector"] == "replay"]

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter."""
        letters: list[dict[str, Any]] = self.get("/api/v1/dead-letters", limit=1000)
        return letters

    def wait_replay_alert(self) -> list[dict[str, Any]]:
        """The replay alerts once there is at least one (fail after a while without)."""
        deadline = time.monotonic() + 30
        while not (alerts := self.replay_alerts()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alerts, "no replay alert was raised"
        return alerts


def _catalog(tmp_path: Path) -> Path:
    """The demo catalog with room in one body for the batch limit of substation readings."""
    text = DEMO_CATALOG.read_text()
    assert "max_payload_bytes: 262144" in text
    path = tmp_path / "catalog.yaml"
    path.write_text(text.replace("max_payload_bytes: 262144", "max_payload_bytes: 2097152"))
    return path


def _readings(first: int, count: int, **over: float) -> list[dict[str, Any]]:
    """``count`` substation readings numbered from ``first``, a second apart, in the past."""
    now = time.time()
    values = {"voltage": 11.0, "frequency": 50.0, "load": 12.0}
    return [
        {"seq": seq, "ts": round(now - 7200 + seq, 3), "values": values | over}
        for seq in range(first, first + count)
    ]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A uniquely named PostgreSQL database for one test, dropped after it."""
    name = f"civicguard_retries_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        unavailable("PostgreSQL server", "postgresql")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def serve_on(tmp_path: Path) -> Iterator[Callable[[str], Serve]]:
    """Make a provisioned, started serve on SQLite ("") or on the database URL given."""
    made: list[Serve] = []

    def make(database_url: str) -> Serve:
        env = os.environ | {"CIVICGUARD_CATALOG": str(_catalog(tmp_path)), "COLUMNS": "200"}
        env.pop("CIVICGUARD_DATABASE_URL", None)
        if database_url:
            env["CIVICGUARD_DATABASE_URL"] = database_url
        server = Serve(tmp_path / "data", env)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.stop()


def _assert_all_duplicates(response: httpx.Response, count: int) -> None:
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 0, "duplicates": count, "rejected": []}


def _assert_replay_refused(response: httpx.Response, seqs: list[int], duplicates: int = 0) -> None:
    body = response.json()
    assert body["accepted"] == 0 and body["duplicates"] == duplicates, body
    assert [r["seq"] for r in body["rejected"]] == seqs
    assert {r["reason"] for r in body["rejected"]} == {"replayed_sequence"}
    for refusal in body["rejected"]:
        # The refusal names the field and the rule, never the device or a value it sent.
        assert DEVICE not in refusal["detail"]
        assert "seq" in refusal["detail"]


def test_a_retried_body_up_to_the_batch_limit_is_stored_once_silently(
    serve_on: Callable[[str], Serve],
) -> None:
    server = serve_on("")
    small = _readings(1, 300)
    large = _readings(301, BATCH_LIMIT)
    for body in (small, large):
        first = server.post(body)
        assert first.status_code == 202, first.text
        assert first.json() == {"accepted": len(body), "duplicates": 0, "rejected": []}
        _assert_all_duplicates(server.post(body), len(body))
    # A reading after the retries: once it is stored, everything sent before it was processed.
    assert server.post(_readings(301 + BATCH_LIMIT, 1)).status_code == 202
    server.wait_stored(300 + BATCH_LIMIT + 1)
    assert server.replay_alerts() == []
    assert server.dead_letters() == []


def test_a_modified_resend_below_the_window_is_refused_and_alerted(
    serve_on: Callable[[str], Serve],
) -> None:
    server = serve_on("")
    body = _readings(1, 300)
    assert server.post(body).status_code == 202
    server.wait_stored(300)
    changed = [dict(r) for r in body]
    changed[10] = {**changed[10], "values": {"voltage": 11.5, "frequency": 50.0, "load": 12.0}}
    resend = server.post(changed)
    # Every other reading is a faithful retransmission; seq 11 alone carries other content.
    assert resend.status_code == 202, resend.text
    _assert_replay_refused(resend, [11], duplicates=299)
    (alert,) = server.wait_replay_alert()
    assert alert["device_id"] == DEVICE and alert["evidence"]["seq"] == 11
    assert [d["reason"] for d in server.dead_letters()] == ["replayed_sequence"]
    server.wait_stored(300)


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_retries_and_replays_are_told_apart_after_a_restart(
    database: str, serve_on: Callable[[str], Serve], request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if database == "postgresql" else ""
    server = serve_on(url)
    body = _readings(1, 300)
    assert server.post(body).status_code == 202
    server.wait_stored(300)
    server.stop()
    server.start()
    # Modified resends, judged by what the restarted guard recalls from the store: one inside
    # the window behind the highest number, one below it (in the last body).
    _assert_replay_refused(server.post(_readings(295, 1, load=13.0)), [295])
    _assert_replay_refused(server.post(_readings(5, 1, load=13.0)), [5])
    # The same body again, as a client retrying across the restart: silent.
    _assert_all_duplicates(server.post(body), 300)
    assert server.post(_readings(301, 1)).status_code == 202
    server.wait_stored(301)
    # Once a newer body came, an old reading sent again unchanged is captured traffic.
    _assert_replay_refused(server.post([body[9]]), [10])
    alerts = server.wait_replay_alert()
    assert {a["device_id"] for a in alerts} == {DEVICE}
    assert {a["evidence"]["seq"] for a in alerts} <= {5, 10, 295}
    # Exactly the modified readings and the old one were refused; nothing of the retry was.
    deadline = time.monotonic() + 30
    while len(letters := server.dead_letters()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(d["seq"] for d in letters) == [5, 10, 295]
    assert {d["reason"] for d in letters} == {"replayed_sequence"}


def test_fingerprints_travel_the_wire_log_with_their_readings() -> None:
    # City-scale mode: serve publishes to JetStream, a worker stores; the fingerprints must
    # arrive with the readings or the worker would store them without.
    import numpy as np

    from civicguard.bus.codec import decode, encode
    from civicguard.ingest.model import ReadingBatch, Transport

    prints = np.array([-(2**63), 0, 2**63 - 1], dtype=np.int64)
    batch = ReadingBatch(
        stream="power.substation",
        fields=("load",),
        device_ids=(DEVICE,) * 3,
        seq=np.arange(3, dtype=np.int64),
        ts=np.zeros(3),
        received_at=np.zeros(3),
        values=np.ones((3, 1)),
        text={},
        cells=("",) * 3,
        transport=Transport.HTTP,
        fingerprints=prints,
    )
    back = decode(encode(batch))
    assert isinstance(back, ReadingBatch) and back.fingerprints is not None
    assert back.fingerprints.tolist() == [-(2**63), 0, 2**63 - 1]
    assert back.take([2, 0]).fingerprints.tolist() == [2**63 - 1, -(2**63)]  # type: ignore[union-attr]

"""An erasure survives a backup restore; CLI changes reach a running ``serve`` within a second.

Everything goes through what an operator and a citizen app have: ``civicguard serve`` as a
process, the HTTP API, and the command line (``backup``, ``subject``, ``devices``) from other
processes, on SQLite and on a PostgreSQL database of its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql

from tests.services import free_port, unavailable

CLI = str(Path(sys.executable).with_name("civicguard"))
APP_STREAM = "citizen.safety_app"
CARMEN, DIEGO = "carmen-4410", "diego-9083"
#: How long a change made by the CLI may take to reach a running serve: "within a second",
#: with room for a loaded machine (the answer is polled, never slept for).
WITHIN = 3.0
PG_ADMIN_URL = os.environ.get(
    "CIVICGUARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class Site:
    """One data directory (and database) that processes of civicguard share."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.server: subprocess.Popen[str] | None = None
        self.url = ""

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``civicguard ARGS --data-dir DIR`` in a process of its own, captured."""
        done = subprocess.run(
            [CLI, *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self.env,
        )
        if check:
            assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done

    def provision(self, device_id: str, stream: str) -> str:
        """Provision a device by the CLI; its secret."""
        out = self.cli(
            "devices", "provision", device_id, "--stream", stream, "--lat", "21.88", "--lon",
            "-102.29",
        ).stdout  # fmt: skip
        return out.split("shown again): ")[1].split()[0]

    def start(self) -> None:
        """``civicguard serve`` on a free port, answering health checks."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = subprocess.Popen(
            [CLI, "serve", "--data-dir", str(self.data_dir), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.server.poll() is None, self.server.communicate()[0]
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not answer within 60 s")

    def stop(self) -> None:
        """Stop ``serve`` as Ctrl-C does; it must exit cleanly."""
        if self.server is None:
            return
        self.server.send_signal(signal.SIGINT)
        output, _ = self.server.communicate(timeout=30)
        code, self.server = self.server.returncode, None
        assert code == 0, output

    def post(self, path: str, secret: str, body: Any) -> httpx.Response:
        """POST ``body`` as JSON with the device's bearer secret."""
        return httpx.post(
            f"{self.url}{path}",
            content=orjson.dumps(body),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            timeout=10,
        )

    def stored(self) -> int:
        """How many readings the database holds (read directly, as a backup tool would)."""
        url = self.env.get("CIVICGUARD_DATABASE_URL")
        if url is None:
            import sqlite3
            from contextlib import closing

            with closing(sqlite3.connect(self.data_dir / "civicguard.db")) as db:
                return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            return int(row[0]) if row else 0

    def export(self, citizen: str) -> list[dict[str, Any]]:
        """The items of the citizen's export, by the CLI."""
        items: list[dict[str, Any]] = orjson.loads(self.cli("subject", "export", citizen).stdout)[
            "items"
        ]
        return items


def reading(seq: int, citizen: str) -> dict[str, Any]:
    """A reading of the safety app about ``citizen``, taken now."""
    values = {"citizen": citizen, "lat": 21.88, "lon": -102.29}
    return {"seq": seq, "ts": time.time(), "values": values}


def kinds(items: list[dict[str, Any]]) -> list[str]:
    """The kinds of export items, sorted."""
    return sorted(i["kind"] for i in items)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """A fresh data directory on SQLite, or on a PostgreSQL database made for this test."""
    env = os.environ | {"COLUMNS": "200", "CIVICGUARD_RETENTION_INTERVAL": "0"}
    env.pop("CIVICGUARD_MASTER_KEY", None)
    name = ""
    if request.param == "postgresql":
        name = f"civicguard_restore_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.OperationalError:
            unavailable("PostgreSQL server", "postgresql")
        env["CIVICGUARD_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    found = Site(tmp_path / "data", env)
    try:
        yield found
    finally:
        if found.server is not None:
            found.server.kill()
            found.server.communicate(timeout=30)
        if name:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def wait_for(what: str, check: Any, timeout: float = 20.0) -> Any:
    """Poll ``check()`` until it returns something true; fail saying ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def accepted(response: httpx.Response) -> int:
    """How many readings of a 202/422 ingest answer were accepted."""
    assert response.status_code in (202, 422), response.text
    return int(response.json()["accepted"])


def test_an_erasure_survives_the_restore_of_a_backup_taken_before_it(
    site: Site, tmp_path: Path
) -> None:
    app = site.provision("safety-app-backend", APP_STREAM)
    site.start()
    for who in (CARMEN, DIEGO):
        grant = site.post("/api/v1/citizens/consent/grant", app, {"citizen": who})
        assert grant.status_code == 201, grant.text
    assert accepted(site.post("/api/v1/ingest", app, [reading(1, CARMEN), reading(2, DIEGO)])) == 2
    wait_for("both readings stored", lambda: site.stored() == 2)
    backup = tmp_path / "before-erasure.backup"
    site.cli("backup", "create", str(backup))

    erased = site.cli("subject", "erase", CARMEN, "--yes")
    assert "key destroyed" in erased.stdout
    # The running serve refuses her next reading at once; Diego is untouched.
    assert accepted(site.post("/api/v1/ingest", app, [reading(3, CARMEN)])) == 0
    assert accepted(site.post("/api/v1/ingest", app, [reading(4, DIEGO)])) == 1
    site.stop()

    restored = site.cli("backup", "restore", str(backup))
    assert "re-applied 1 erasure" in restored.stdout, restored.stdout
    assert re.search(r"\b1 key destroyed since this backup stays? destroyed", restored.stdout), (
        restored.stdout
    )
    assert {"subject_request"} >= set(kinds(site.export(CARMEN))), site.export(CARMEN)

    site.start()
    refused = site.post("/api/v1/ingest", app, [reading(5, CARMEN)])
    assert accepted(refused) == 0 and refused.json()["rejected"][0]["reason"] == "no_consent"
    assert accepted(site.post("/api/v1/ingest", app, [reading(6, DIEGO)])) == 1

    # Carmen comes back of her own will: her new consent works, her old data stays gone.
    again = site.post("/api/v1/citizens/consent/grant", app, {"citizen": CARMEN})
    assert again.status_code == 201, again.text
    assert accepted(site.post("/api/v1/ingest", app, [reading(7, CARMEN)])) == 1
    # Diego's reading of the backup, his one after the restore, and Carmen's new one.
    wait_for("Carmen's new reading stored", lambda: site.stored() == 3)
    items = site.export(CARMEN)
    assert [i["data"]["seq"] for i in items if i["kind"] == "reading"] == [7]
    assert [i["kind"] for i in items].count("consent") == 1
    assert [i["kind"] for i in items].count("consent_receipt") == 1
    # Restoring the same old backup again, after her return, is in tests/citizens/test_restore.py.


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_a_restore_that_skipped_the_re_application_still_cannot_bring_the_citizen_back(
    site: Site, tmp_path: Path
) -> None:
    """The consent gate and the export trust the key store and the erasure ledger, not rows."""
    app = site.provision("safety-app-backend", APP_STREAM)
    site.start()
    assert site.post("/api/v1/citizens/consent/grant", app, {"citizen": CARMEN}).status_code == 201
    assert accepted(site.post("/api/v1/ingest", app, [reading(1, CARMEN)])) == 1
    wait_for("Carmen's reading stored", lambda: site.stored() == 1)
    site.stop()
    backup = tmp_path / "before-erasure.backup"
    site.cli("backup", "create", str(backup))
    site.cli("subject", "erase", CARMEN, "--yes")
    # An operator restores with the database's own tools, bypassing `backup restore`.
    raw_restore(site, backup)
    assert {"subject_request"} >= set(kinds(site.export(CARMEN))), site.export(CARMEN)
    site.start()
    assert accepted(site.post("/api/v1/ingest", app, [reading(2, CARMEN)])) == 0
    assert site.post("/api/v1/citizens/consent/grant", app, {"citizen": CARMEN}).status_code == 201
    assert accepted(site.post("/api/v1/ingest", app, [reading(3, CARMEN)])) == 1
    wait_for("Carmen's new reading stored", lambda: site.stored() == 2)
    items = site.export(CARMEN)
    assert [i["data"]["seq"] for i in items if i["kind"] == "reading"] == [3]
    assert [i["kind"] for i in items].count("consent") == 1


def raw_restore(site: Site, backup: Path) -> None:
    """Put the backup back with sqlite3 or pg_restore alone, as an operator might."""
    url = site.env.get("CIVICGUARD_DATABASE_URL")
    if url is None:
        import sqlite3
        from contextlib import closing

        db = site.data_dir / "civicguard.db"
        with closing(sqlite3.connect(backup)) as src, closing(sqlite3.connect(db)) as out:
            src.backup(out)
        return
    subprocess.run(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
         "--dbname", url, str(backup)],
        check=True, capture_output=True,
    )  # fmt: skip


def test_a_device_revoked_by_the_cli_is_refused_by_a_running_serve_within_a_second(
    site: Site,
) -> None:
    secret = site.provision("tank-1", "water.tank")
    site.start()
    body = {"seq": 1, "ts": time.time(), "values": {"level": 3.2, "inflow": 10.0}}
    assert site.post("/api/v1/ingest", secret, body).status_code == 202

    # Provisioned by the CLI while serve runs: its readings are taken at once.
    late = site.provision("tank-2", "water.tank")
    wait_for(
        "the CLI-provisioned device accepted",
        lambda: site.post("/api/v1/ingest", late, {**body, "ts": time.time()}).status_code == 202,
        timeout=WITHIN,
    )

    site.cli("devices", "revoke", "tank-1")
    seq = iter(range(2, 10_000))

    def refused() -> httpx.Response | None:
        sent = {**body, "seq": next(seq), "ts": time.time()}
        answer = site.post("/api/v1/ingest", secret, sent)
        return answer if answer.status_code == 403 else None

    answer = wait_for("the revoked device refused", refused, timeout=WITHIN)
    assert answer.json()["reason"] == "revoked_device"
    # And it stays refused; the other device carries on.
    assert site.post("/api/v1/ingest", secret, {**body, "seq": 99_999}).status_code == 403
    assert (
        site.post("/api/v1/ingest", late, {**body, "seq": 2, "ts": time.time()}).status_code == 202
    )


class CountingDevices:
    """A device repository that counts how often the store is asked whether devices changed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.checks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def version(self) -> tuple[object, ...]:
        self.checks += 1
        return tuple(self.inner.version())


def test_a_registry_notices_another_processes_changes_after_its_check_interval_only(
    tmp_path: Path,
) -> None:
    """Two registries over one store, as serve and the CLI: no query per lookup, and a change
    made by one is seen by the other at its next look, half a second later at most."""
    from civicguard.catalog.loader import demo_catalog
    from civicguard.ingest.model import Device
    from civicguard.ingest.registry import AuthError, DeviceRegistry
    from civicguard.privacy.keys import MemoryKeyStore, Sealer
    from civicguard.store.database import make_engine, sqlite_url
    from civicguard.store.migrate import upgrade
    from civicguard.store.repositories import DeviceRepository

    engine = make_engine(sqlite_url(tmp_path))
    upgrade(engine)
    sealer, catalog = Sealer(MemoryKeyStore()), demo_catalog()
    now = [100.0]
    cli = DeviceRegistry(DeviceRepository(engine), sealer, catalog)
    counted = CountingDevices(DeviceRepository(engine))
    serve = DeviceRegistry(counted, sealer, catalog, check_every=0.5, monotonic=lambda: now[0])  # type: ignore[arg-type]
    tank = Device(id="tank-1", stream="water.tank", lat=21.88, lon=-102.29)
    secret = cli.provision(tank, 1.0)

    now[0] += 0.6
    assert serve.by_token(secret).id == "tank-1"  # provisioned elsewhere, seen at the next look
    checks = counted.checks
    for _ in range(1000):
        serve.by_token(secret)
    assert counted.checks == checks  # within the interval: no query at all

    assert cli.revoke("tank-1", 2.0)
    assert serve.by_token(secret).id == "tank-1"  # not looked yet
    now[0] += 0.5
    with pytest.raises(AuthError) as refused:
        serve.by_token(secret)
    assert refused.value.reason.value == "revoked_device"
    got = serve.get("tank-1")
    assert got is not None and got.revoked  # workers place devices with get(): same view

    # The API revokes a device the CLI provisioned a moment ago, before serve looked again.
    cli.provision(Device(id="tank-2", stream="water.tank", lat=21.88, lon=-102.29), 3.0)
    assert serve.revoke("tank-2", 4.0)
    fresh = serve.get("tank-2")
    assert fresh is not None and fresh.revoked
    engine.dispose()

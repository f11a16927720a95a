"""The command line as an operator uses it: serve, devices, replay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from tests.services import free_port

CLI = str(Path(sys.executable).with_name("civicguard"))


def run(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``civicguard ARGS --data-dir DATA_DIR``, captured."""
    return subprocess.run(
        [CLI, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
        env=os.environ | {"COLUMNS": "200"},
    )


def test_devices_are_provisioned_listed_and_revoked(tmp_path: Path) -> None:
    out = run(
        "devices",
        "provision",
        "tank-9",
        "--stream",
        "water.tank",
        "--lat",
        "21.88",
        "--lon",
        "-102.29",
        "--district",
        "Centro",
        data_dir=tmp_path,
    ).stdout
    secret = out.split("shown again): ")[1].split()[0]
    assert len(secret) >= 32
    assert secret.encode() not in (tmp_path / "civicguard.db").read_bytes()
    again = run(
        "devices",
        "provision",
        "tank-9",
        "--stream",
        "water.tank",
        "--lat",
        "0",
        "--lon",
        "0",
        data_dir=tmp_path,
        check=False,
    )
    assert again.returncode == 2 and "already exists" in again.stdout
    unknown = run(
        "devices",
        "provision",
        "x-1",
        "--stream",
        "weather.balloon",
        "--lat",
        "0",
        "--lon",
        "0",
        data_dir=tmp_path,
        check=False,
    )
    assert unknown.returncode == 2 and "not in the catalog" in unknown.stdout
    assert "tank-9" in run("devices", "list", data_dir=tmp_path).stdout
    run("devices", "revoke", "tank-9", data_dir=tmp_path)
    assert "yes" in run("devices", "list", data_dir=tmp_path).stdout
    missing = run("devices", "revoke", "nope", data_dir=tmp_path, check=False)
    assert missing.returncode == 2


def test_replay_ingests_a_file_and_reports_refusals(tmp_path: Path) -> None:
    run(
        "devices",
        "provision",
        "sub-1",
        "--stream",
        "power.substation",
        "--lat",
        "21.88",
        "--lon",
        "-102.29",
        data_dir=tmp_path,
    )
    now = time.time()
    lines = [
        orjson.dumps(
            {
                "device": "sub-1",
                "seq": i,
                "ts": now - 60 + i,
                "values": {"voltage": 11.0, "frequency": 50.0, "load": 9.5},
            }
        )
        for i in range(1, 6)
    ]
    lines.append(b'{"device": "sub-1", "seq": 9, "ts": 1, "values": {"voltage": "x"}}')
    file = tmp_path / "readings.jsonl"
    file.write_bytes(b"\n".join(lines) + b"\n")
    result = run("replay", str(file), data_dir=tmp_path, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "5" in result.stdout and "rejected" in result.stdout.lower()


def test_serve_creates_an_admin_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [CLI, "serve", "--data-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        password_file = tmp_path / "initial-admin-password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        password = password_file.read_text().strip()
        login = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": password}
        )
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        devices = httpx.get(f"{url}/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
        assert devices.status_code == 200 and devices.json() == []
        assert httpx.get(f"{url}/api/v1/alerts").status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert password in output


def test_broker_auth_files_let_each_device_write_only_its_own_topic(tmp_path: Path) -> None:
    for device in ("door-1", "door-2"):
        run(
            "devices",
            "provision",
            device,
            "--stream",
            "access.door",
            "--lat",
            "21.88",
            "--lon",
            "-102.29",
            data_dir=tmp_path,
        )
    run("devices", "revoke", "door-2", data_dir=tmp_path)
    out = tmp_path / "broker"
    result = subprocess.run(
        [CLI, "devices", "broker-auth", "--out", str(out), "--data-dir", str(tmp_path)],
        input="platform-secret\nplatform-secret\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "password_file" in result.stdout
    acl = (out / "acl").read_text()
    assert "pattern write civicguard/%u/readings" in acl
    assert "user civicguard\ntopic read civicguard/#" in acl
    logins = [line.split(":")[0] for line in (out / "passwd").read_text().splitlines()]
    assert sorted(logins) == ["civicguard", "door-1"]  # revoked devices get no login
    assert "platform-secret" not in (out / "passwd").read_text()  # hashed by mosquitto_passwd

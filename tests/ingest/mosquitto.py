"""A real Mosquitto broker for tests: started on a free port in a temp dir, stopped afterwards."""

from __future__ import annotations

import getpass
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.services import free_port, port_open, require_binary

PACKAGE = "Debian package mosquitto"


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    """A running broker: where it listens and where its log goes."""

    host: str
    port: int
    log_file: Path

    def log_text(self) -> str:
        """What the broker has logged so far (for failure messages)."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@contextmanager
def mosquitto(
    directory: Path,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    extra: tuple[str, ...] = (),
    persistence: bool = False,
) -> Iterator[Broker]:
    """Run ``/usr/sbin/mosquitto`` on 127.0.0.1 with password auth + ACL when files are given.

    With ``persistence`` the broker keeps its sessions and queued messages in
    ``directory/store/mosquitto.db`` (written when it stops).
    """
    binary = require_binary("mosquitto", PACKAGE)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "store").mkdir(exist_ok=True)
    port = free_port()
    log_file = directory / "mosquitto.log"
    lines = [
        f"listener {port} 127.0.0.1",
        # Mosquitto started as root drops to user "mosquitto", which could not read our files.
        f"user {getpass.getuser()}",
        *(
            ["persistence true", f"persistence_location {directory / 'store'}/"]
            if persistence
            else ["persistence false"]
        ),
        f"log_dest file {log_file}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        # Tests and benchmarks publish bursts faster than a Python subscriber acknowledges.
        "max_queued_messages 0",
        "max_inflight_messages 0",
    ]
    if password_file is not None:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines += ["allow_anonymous true"]
    if acl_file is not None:
        lines.append(f"acl_file {acl_file}")
    lines += list(extra)
    config = directory / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port, timeout=0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                logged = log_file.read_text() if log_file.exists() else ""
                raise RuntimeError(f"mosquitto did not start: {err}{logged}")
            time.sleep(0.05)
        yield Broker(host="127.0.0.1", port=port, log_file=log_file)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

"""Finding the servers and binaries tests need: skip with the package's name, or fail under CI."""

from __future__ import annotations

import os
import shutil
import socket
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when running in CI, where a missing service is a failure, never a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str, package: str) -> NoReturn:
    """Skip the test naming the package that provides ``what`` (fail instead under CI)."""
    message = f"{what} is not available (install: {package})"
    if in_ci():
        pytest.fail(message + "; CI requires it", pytrace=False)
    pytest.skip(message)


def missing_data(message: str) -> NoReturn:
    """Skip for a data file that is not in shared/data (fail instead under CI, where the
    shared data is always laid beside the clone: a missing file there is a broken set-up)."""
    if in_ci():
        pytest.fail(message + "; CI requires it", pytrace=False)
    pytest.skip(message)


def require_binary(name: str, package: str) -> str:
    """The path of executable ``name``, or skip/fail naming ``package``."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    unavailable(f"the {name} binary", package)
    raise AssertionError("unreachable")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

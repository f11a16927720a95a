"""A small filesystem of its own (tmpfs) that a test can fill up: a full disk without root tricks.

Root ignores file permissions, so "read-only" cannot be made with chmod here; a tmpfs of a few
megabytes filled to the last byte refuses every write that needs a new block, whoever asks.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.services import require_binary

FILLER = "filler"


@contextlib.contextmanager
def small_disk(where: Path, size_mb: int = 64) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted on ``where`` (created) for the ``with`` block."""
    mount = require_binary("mount", "Debian package mount")
    umount = require_binary("umount", "Debian package mount")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs on {where}: {done.stderr}"
    try:
        yield where
    finally:
        # Lazy: a process the test killed may still be letting go of its files.
        subprocess.run([umount, "-l", str(where)], capture_output=True, check=False)


def fill(disk: Path) -> Path:
    """Write a file into ``disk`` until the filesystem has no free byte left; return its path."""
    path = disk / FILLER
    chunk = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            block = chunk[:size]
            while True:
                try:
                    out.write(block)
                except OSError:
                    break
    return path

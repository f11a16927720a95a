"""A small file that several processes read, and rewrite whole under a lock.

The key store (``keys/keys.json``) and the erasure ledger (``keys/erasures.json``) are both kept
this way: a change takes an exclusive lock on ``<file>.lock``, re-reads the file and writes it
back whole (fsync, rename, fsync of the folder), so no process drops another's change; a read
re-reads the file only when it changed on disk since this process last read or wrote it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: What tells one version of the file from another: inode, modification time and size.
_Stamp = tuple[int, int, int]


class SharedFile:
    """One such file; :attr:`lock` also guards its owner's in-memory copy within a process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._lock_path = path.with_name(path.name + ".lock")
        self._seen: _Stamp | None = None

    def reload(self, parse: Callable[[bytes | None], None]) -> None:
        """Hand the file's bytes (None when absent) to ``parse`` if it changed since last seen.

        A ``parse`` that raises leaves the file unseen, so the next call tries it again.
        """
        stamp = self._stamp()
        if stamp == self._seen:
            return
        parse(self.path.read_bytes() if stamp is not None else None)
        self._seen = stamp

    @contextmanager
    def exclusive(self, reload: Callable[[], None]) -> Iterator[None]:
        """This thread and process alone change the file; ``reload`` freshens the copy first."""
        with self.lock:
            fd = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                reload()
                yield
            finally:
                os.close(fd)  # closing releases the lock

    def write(self, data: bytes) -> None:
        """Replace the file with ``data``; durable on return, the rename included."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._seen = self._stamp()

    def _stamp(self) -> _Stamp | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

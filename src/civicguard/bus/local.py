"""The durable local event log: the embedded default, a SQLite file of its own in the data dir.

``publish`` returns only once its events are committed to ``<data_dir>/events.db``, so a
reading answered 202 survives SIGTERM and kill -9 of ``serve`` (ADR 0005). The file is the
log's own, not the store's database: the store may be PostgreSQL, and what waits in the log
must not end up in the store's backups.

Durability level: WAL with ``synchronous=FULL``: every commit is fsynced before ``publish``
returns, so an acknowledged reading survives the process dying in any way and also what loses
the page cache: a power loss, a kernel crash, or a disk that ext4 turns read-only after an I/O
error (``civicguard bench faults`` lost 1,000 acknowledged readings of 20,000 on that fault with
``NORMAL``, none with ``FULL``). ADR 0005 gives the measured cost of each level.

One process consumes a log at a time: the consumer holds ``events.db.consumer`` locked
(``flock``), and a second consumer (``civicguard replay`` beside ``serve``) gets nothing, so
the process that holds the pipeline's state does the processing. Any process may publish.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from civicguard.bus.codec import decode, encode
from civicguard.bus.port import Event, EventLogUnavailable
from civicguard.ingest.model import ReadingBatch

log = logging.getLogger(__name__)

#: File name of the log inside the data directory.
EVENTS_FILE = "events.db"
#: Seconds between looks at the file for events other processes published.
POLL_S = 0.05
#: Seconds a write waits for another process's write before the log counts as unavailable.
BUSY_TIMEOUT_S = 5.0

#: Readings (a refusal counts as one) that the consuming process keeps in memory as it published
#: them, so that its consumer need not decode them from the file (decoding costs more than
#: the insert); beyond it, events are decoded from the file as any other process's are.
CACHE_READINGS = 200_000

Synchronous = Literal["NORMAL", "FULL"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    -- AUTOINCREMENT: ids never go back, even once every row is deleted, so a consumer's
    -- position (the last id it took) stays meaningful.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL
)
"""


class LocalEventLog:
    """An :class:`~civicguard.bus.port.EventLog` in a SQLite file, durable across crashes.

    Events are rows in id order. A consumer reads after its position (the last id it took);
    ``commit`` deletes everything up to the position, ``release`` moves the position back to
    the last commit. A consumer that dies before committing leaves the rows in place, and the
    next one to open the file reads them again.
    """

    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".consumer")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            # Debian's SQLite zeroes deleted rows by default, which triples the cost of a
            # commit here; what a deleted event held is what the store keeps anyway.
            self._db.execute("PRAGMA secure_delete=OFF")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise EventLogUnavailable(f"cannot open the event log {self.path}: {exc}") from exc
        #: One connection, used by one thread at a time (publishers, the consumer).
        self._lock = threading.Lock()
        #: Wakes a waiting consumer when this process publishes.
        self._ready = threading.Condition()
        self._published = 0
        #: The last id consumed, and the last id committed (deleted up to).
        self._position = 0
        self._committed = 0
        self._consumer_fd: int | None = None
        self._closed = False
        #: Events this process published while it is the consumer, by id, not yet committed.
        self._cache: dict[int, Event] = {}
        self._cached = 0

    def publish(self, events: Sequence[Event]) -> None:
        """Append ``events`` in one transaction; returns once it is committed."""
        if not events:
            return
        rows = [(encode(event),) for event in events]
        with self._lock:
            self._check_open()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO events (body) VALUES (?)", rows)
                last = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise EventLogUnavailable(f"the event log cannot store events now ({exc})") from exc
            # One writer at a time and AUTOINCREMENT: the call's ids are the last len(rows).
            self._remember(last - len(rows) + 1, events)
        with self._ready:
            self._published += 1
            self._ready.notify_all()

    def consume(self, max_events: int, timeout: float) -> list[Event]:
        """Up to ``max_events`` events after this consumer's position, waiting up to ``timeout`` s.

        Returns nothing while another process holds the consumer lock.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._ready:
                seen = self._published
            if self._hold_consumer_lock():
                events = self._read(max_events)
                if events:
                    return events
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return []
            with self._ready:
                if self._published == seen and not self._closed:
                    self._ready.wait(min(remaining, POLL_S))

    def commit(self) -> None:
        """Delete everything consumed so far: it will not be delivered again."""
        position = self._position
        if position <= self._committed:
            return
        with self._lock:
            self._check_open()
            try:
                self._db.execute("DELETE FROM events WHERE id <= ?", (position,))
            except sqlite3.Error as exc:
                raise EventLogUnavailable(f"the event log cannot acknowledge ({exc})") from exc
            self._forget(position)
        self._committed = position

    def release(self) -> None:
        """Go back to the last commit: what was consumed since is returned again."""
        self._position = self._committed

    def pending(self) -> int:
        """Events published and not yet consumed here."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT count(*) FROM events WHERE id > ?", (self._position,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the file and let another consumer take over; wake a waiting consumer."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
                if self._consumer_fd is not None:
                    os.close(self._consumer_fd)  # closing the descriptor drops the flock
                    self._consumer_fd = None
        with self._ready:
            self._ready.notify_all()

    def _read(self, max_events: int) -> list[Event]:
        with self._lock:
            self._check_open()
            try:
                rows = self._db.execute(
                    "SELECT id, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
                    (self._position, max_events),
                ).fetchall()
            except sqlite3.Error as exc:
                raise EventLogUnavailable(f"the event log cannot be read ({exc})") from exc
            cached = [self._cache.get(int(id_)) for id_, _ in rows]
        if not rows:
            return []
        events = [
            event if event is not None else decode(body)
            for event, (_, body) in zip(cached, rows, strict=True)
        ]
        self._position = int(rows[-1][0])
        return events

    def _remember(self, first_id: int, events: Sequence[Event]) -> None:
        """Keep what this process published for its own consumer (caller holds the lock)."""
        if self._consumer_fd is None:
            return
        for id_, event in enumerate(events, start=first_id):
            size = len(event) if isinstance(event, ReadingBatch) else 1
            if self._cached + size > CACHE_READINGS:
                return
            self._cache[id_] = event
            self._cached += size

    def _forget(self, position: int) -> None:
        """Drop kept events up to ``position`` (caller holds the lock); ids are in order."""
        while self._cache:
            id_ = next(iter(self._cache))
            if id_ > position:
                return
            event = self._cache.pop(id_)
            self._cached -= len(event) if isinstance(event, ReadingBatch) else 1

    def _hold_consumer_lock(self) -> bool:
        """True once this log is the file's one consumer (taken on first use, kept until close)."""
        with self._lock:
            if self._consumer_fd is not None:
                return True
            if self._closed:
                return False
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._consumer_fd = fd
            return True

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _check_open(self) -> None:
        if self._closed:
            raise EventLogUnavailable("the event log is closed")

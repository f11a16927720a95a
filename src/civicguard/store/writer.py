"""A background writer: stores readings and dead letters while detectors work on the same batch.

SQLite and psycopg release the interpreter lock while the database works, so writing in a
thread of its own lets the second core store one batch while the pipeline detects on it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from civicguard.ingest.model import ReadingBatch, Rejection
from civicguard.metrics import METRICS
from civicguard.store.repositories import Store

log = logging.getLogger(__name__)

_Job = tuple[list[ReadingBatch], list[Rejection]] | None

#: Most queued writes stored in one transaction.
COALESCE = 8


class BackgroundWriter:
    """Writes what it is given in order, in one thread; :meth:`flush` waits until stored.

    A failed write is retried until it succeeds or the writer is closed, so a database that
    is briefly away slows the pipeline down (the queue is bounded) instead of losing readings.
    """

    def __init__(self, store: Store, max_pending: int = 16, retry_s: float = 1.0) -> None:
        self._store = store
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=max_pending)
        self._retry_s = retry_s
        self._closed = threading.Event()
        #: Readings written so far that were not already stored.
        self.stored = 0
        self._thread = threading.Thread(target=self._run, name="civicguard-writer", daemon=True)
        self._thread.start()

    def write(self, batches: Sequence[ReadingBatch], rejections: Sequence[Rejection]) -> None:
        """Queue a write; blocks while ``max_pending`` writes are already waiting."""
        if self._closed.is_set():
            raise RuntimeError("writer is closed")
        if batches or rejections:
            self._queue.put((list(batches), list(rejections)))

    def flush(self) -> None:
        """Wait until everything queued so far is stored."""
        self._queue.join()

    def close(self) -> None:
        """Store what is queued, then stop the thread."""
        if self._closed.is_set():
            return
        self._queue.put(None)
        self._thread.join()
        self._closed.set()

    def _run(self) -> None:
        while True:
            jobs = [self._queue.get()]
            # Whatever queued up meanwhile goes into the same transaction: fewer commits.
            while jobs[-1] is not None and len(jobs) < COALESCE:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                batches = [b for job in jobs if job is not None for b in job[0]]
                rejections = [r for job in jobs if job is not None for r in job[1]]
                self._store_job(batches, rejections)
            finally:
                for _ in jobs:
                    self._queue.task_done()
            if jobs[-1] is None:
                return

    def _store_job(self, batches: list[ReadingBatch], rejections: list[Rejection]) -> None:
        while True:
            try:
                if batches:
                    new = self._store.readings.write(batches)
                    self.stored += new
                    METRICS.stored.inc(new)
                    batches = []
                if rejections:
                    self._store.dead_letters.write(rejections)
                return
            except Exception:
                if self._closed.wait(self._retry_s):
                    log.exception("writer closed with a write failing; it stays in the event log")
                    raise
                log.exception("store write failed; retrying in %.1f s", self._retry_s)

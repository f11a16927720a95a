"""The in-process event log: for unit tests only; one process, nothing on disk, not durable.

``civicguard serve`` uses :class:`civicguard.bus.local.LocalEventLog` instead: everything this
log holds is lost with the process.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from civicguard.bus.port import Event


class MemoryEventLog:
    """A queue between ingest and the pipeline's consumer inside one process."""

    def __init__(self) -> None:
        self._queue: deque[Event] = deque()
        #: Consumed and not yet committed, in order: what ``release`` hands back.
        self._taken: list[Event] = []
        self._ready = threading.Condition()
        self._closed = False

    def publish(self, events: Sequence[Event]) -> None:
        """Append ``events`` and wake the consumer."""
        if not events:
            return
        with self._ready:
            self._queue.extend(events)
            self._ready.notify_all()

    def consume(self, max_events: int, timeout: float) -> list[Event]:
        """Take up to ``max_events`` events, waiting up to ``timeout`` s for the first one."""
        with self._ready:
            if not self._queue and not self._closed:
                self._ready.wait(timeout)
            n = min(max_events, len(self._queue))
            taken = [self._queue.popleft() for _ in range(n)]
            self._taken.extend(taken)
            return taken

    def commit(self) -> None:
        """Forget what was consumed: it is not handed back any more."""
        with self._ready:
            self._taken.clear()

    def release(self) -> None:
        """Put what was consumed and not committed back at the front, in its order."""
        with self._ready:
            self._queue.extendleft(reversed(self._taken))
            self._taken.clear()
            self._ready.notify_all()

    def pending(self) -> int:
        """Events published and not yet consumed."""
        return len(self._queue)

    def close(self) -> None:
        """Wake any waiting consumer; the log takes no more waits."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

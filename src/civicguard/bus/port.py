"""The event log port: what ingest publishes and workers consume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from civicguard.ingest.model import ReadingBatch, Rejection

Event = ReadingBatch | Rejection


class EventLogUnavailable(Exception):  # noqa: N818 - the port's word: the log is unavailable
    """The log cannot make events durable now (disk full or read-only, log unreachable).

    Raised by ``publish``: nothing of the call is acknowledged, so the sender must be told to
    come back later (HTTP 503 with Retry-After, MQTT no acknowledgement).
    """


class EventLog(Protocol):
    """An ordered log of protected reading batches and refusals.

    Every production adapter is durable: ``publish`` returns only once its events survive the
    publishing process being killed, and a consumer that dies before ``commit`` gets them again.
    """

    def publish(self, events: Sequence[Event]) -> None:
        """Append ``events``; returns once they are durable, else raises EventLogUnavailable."""
        ...

    def consume(self, max_events: int, timeout: float) -> list[Event]:
        """Up to ``max_events`` events not yet consumed here; waits up to ``timeout`` seconds."""
        ...

    def commit(self) -> None:
        """Acknowledge everything returned by ``consume`` so far: it will not be redelivered."""
        ...

    def release(self) -> None:
        """Hand back everything consumed and not committed: the next ``consume`` returns it again.

        The pipeline calls it when a step fails, so that nothing it has not stored is
        acknowledged by a later step's commit.
        """
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...

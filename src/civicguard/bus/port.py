"""The event log port: what ingest publishes and workers consume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from civicguard.ingest.model import ReadingBatch, Rejection

Event = ReadingBatch | Rejection


class EventLogUnavailable(Exception):  # noqa: N818 - the name the ports share
    """Events could not be made durable (the log is unreachable or answers nothing).

    Nothing was acknowledged to the sender: the HTTP ingest route answers 503 with
    Retry-After, so the device sends the same readings again.
    """


class EventLog(Protocol):
    """An ordered, durable-or-not log of protected reading batches and refusals."""

    def publish(self, events: Sequence[Event]) -> None:
        """Append ``events`` to the log."""
        ...

    def consume(self, max_events: int, timeout: float) -> list[Event]:
        """Up to ``max_events`` events not yet consumed here; waits up to ``timeout`` seconds."""
        ...

    def commit(self) -> None:
        """Acknowledge everything returned by ``consume`` so far: it will not be redelivered."""
        ...

    def release(self) -> None:
        """Hand back everything consumed and not committed, for redelivery."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...

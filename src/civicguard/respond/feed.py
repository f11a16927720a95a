"""The live feed: pushes alerts and incident changes to whoever watches (the command centre)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class LiveFeed:
    """In-process publish/subscribe of JSON-ready events; listeners must not block."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: dict[str, Any]) -> None:
        """Hand ``event`` to every listener."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                # One broken watcher (a closed browser tab) must not stop the others, or the
                # pipeline that publishes.
                log.exception("a live-feed listener failed")

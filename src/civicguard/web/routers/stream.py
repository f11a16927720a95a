"""Server-sent events: the live feed (alerts and incident changes) for the command centre."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from civicguard.respond.feed import LiveFeed
from civicguard.web.deps import API_PREFIX, PlatformDep

router = APIRouter(prefix=f"{API_PREFIX}/stream", tags=["live"])

#: Events held for a slow client before the oldest are dropped (it refetches lists on reconnect).
QUEUE_SIZE = 1000


def sse_message(event: dict[str, Any]) -> bytes:
    """One event in ``text/event-stream`` framing; the event name is the event's ``type``."""
    name = str(event.get("type", "message"))
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _Subscription:
    """Bridges the feed's publishing thread to one client's event loop without blocking it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)

    def _offer(self, event: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(event)

    def __call__(self, event: dict[str, Any]) -> None:
        # The loop may already be closed when a late event arrives after the client left.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._offer, event)


async def _events(feed: LiveFeed, state: Any, heartbeat_s: float) -> AsyncIterator[bytes]:
    stopping: threading.Event = state.stopping
    subscription = _Subscription(asyncio.get_running_loop())
    # Subscribed before the first byte goes out: a client that has read it misses nothing.
    unsubscribe = feed.subscribe(subscription)
    state.live_clients += 1
    try:
        yield b"retry: 3000\n: connected\n\n"
        last = time.monotonic()
        while not stopping.is_set():
            try:
                # Wake at least every second so that a server shutdown ends the stream promptly.
                wait = min(1.0, max(0.0, heartbeat_s - (time.monotonic() - last)))
                event = await asyncio.wait_for(subscription.queue.get(), timeout=wait)
            except TimeoutError:
                if time.monotonic() - last >= heartbeat_s:
                    last = time.monotonic()
                    yield b": heartbeat\n\n"
                continue
            last = time.monotonic()
            yield sse_message(event)
    finally:
        # Runs when the client disconnects (the response task is cancelled) or the server stops.
        unsubscribe()
        state.live_clients -= 1


@router.get(
    "/alerts",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events until the client leaves or the server stops.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def alert_stream(request: Request, platform: PlatformDep) -> StreamingResponse:
    """``text/event-stream`` of alerts (event ``alert``) and incident changes (``incident``)."""
    heartbeat_s: float = request.app.state.heartbeat_s
    return StreamingResponse(
        _events(platform.feed, request.app.state, heartbeat_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

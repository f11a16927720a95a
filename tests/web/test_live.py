"""The live feed over server-sent events: alerts and incident changes reach the console."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx

from civicguard.platform import Platform
from civicguard.web.server import WebServer

from .conftest import bearer, provision, raise_alert

STREAM = "/api/v1/stream/alerts"


def events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event name, data) of each SSE message; comments come as ("comment", text)."""
    name, data = "message", ""
    for line in lines:
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and data:
            yield name, data
            name, data = "message", ""


def test_an_alert_filed_on_the_platform_reaches_the_stream(
    platform: Platform, server: WebServer, tokens: dict[str, str]
) -> None:
    provision(platform, "door-1", "access.door")
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", STREAM, headers=bearer(tokens["operator"])) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        feed = events(response.iter_lines())
        assert next(feed) == ("comment", "connected")
        alert = raise_alert(platform, "door-1")
        name, data = next(feed)
        assert name == "alert"
        sent = json.loads(data)
        assert (sent["id"], sent["severity"], sent["incident_id"]) == (
            alert.id,
            "high",
            alert.incident_id,
        )
        # An operator acting on the incident is broadcast to every console.
        ack = client.post(
            f"/api/v1/incidents/{alert.incident_id}/acknowledge", headers=bearer(tokens["operator"])
        )
        assert ack.status_code == 200
        name, data = next(feed)
        assert name == "incident"
        assert json.loads(data)["status"] == "acknowledged"


def test_idle_stream_gets_heartbeats_and_a_disconnect_unsubscribes(
    platform: Platform, server: WebServer, tokens: dict[str, str]
) -> None:
    server.app.state.heartbeat_s = 0.2
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", STREAM, headers=bearer(tokens["auditor"])) as response,
    ):
        feed = events(response.iter_lines())
        assert next(feed) == ("comment", "connected")
        assert next(feed) == ("comment", "heartbeat")
        assert server.app.state.live_clients == 1
    deadline = time.monotonic() + 5
    while server.app.state.live_clients and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.app.state.live_clients == 0
    # With nobody listening, publishing still works and reaches no stale queue.
    platform.feed.publish({"type": "alert", "id": "x"})


def test_stopping_the_server_ends_open_streams(platform: Platform, tokens: dict[str, str]) -> None:
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    # Staff exist already (the tokens fixture made them); sign one in on this second server.
    token = web.app.state.signer.issue("operator", "operator", platform.clock.now())[0]
    client = httpx.Client(base_url=web.url, timeout=10)
    with client.stream("GET", STREAM, headers=bearer(token)) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("retry")
        started = time.monotonic()
        web.stop()
        assert time.monotonic() - started < 5
    client.close()

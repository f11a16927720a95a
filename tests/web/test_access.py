"""The access table: every route is declared, and each role gets exactly what the table grants."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from civicguard.govern import access
from civicguard.govern.accounts import Role
from civicguard.platform import Platform
from civicguard.web.app import ROUTERS, create_app
from civicguard.web.server import WebServer

from .conftest import add_staff, bearer, build_platform

#: A concrete call of every granted endpoint (ids that do not exist: no call changes state).
CALLS: dict[tuple[str, str], tuple[str, dict[str, object] | None]] = {
    ("GET", "/api/v1/auth/me"): ("/api/v1/auth/me", None),
    ("GET", "/api/v1/catalog"): ("/api/v1/catalog", None),
    ("GET", "/api/v1/map"): ("/api/v1/map", None),
    ("GET", "/api/v1/devices"): ("/api/v1/devices", None),
    ("POST", "/api/v1/devices"): ("/api/v1/devices", {}),
    ("POST", "/api/v1/devices/{device_id}/revoke"): ("/api/v1/devices/nope/revoke", None),
    ("GET", "/api/v1/readings"): ("/api/v1/readings", None),
    ("GET", "/api/v1/alerts"): ("/api/v1/alerts", None),
    ("GET", "/api/v1/alerts/{alert_id}"): ("/api/v1/alerts/nope", None),
    ("POST", "/api/v1/alerts/{alert_id}/mark"): ("/api/v1/alerts/nope/mark", {"verdict": "true"}),
    ("GET", "/api/v1/alerts/{alert_id}/marks"): ("/api/v1/alerts/nope/marks", None),
    ("GET", "/api/v1/detectors/feedback"): ("/api/v1/detectors/feedback", None),
    ("GET", "/api/v1/incidents"): ("/api/v1/incidents", None),
    ("GET", "/api/v1/incidents/{incident_id}"): ("/api/v1/incidents/nope", None),
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): (
        "/api/v1/incidents/nope/acknowledge",
        None,
    ),
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): ("/api/v1/incidents/nope/resolve", None),
    ("GET", "/api/v1/dead-letters"): ("/api/v1/dead-letters", None),
    ("GET", "/api/v1/stream/alerts"): ("/api/v1/stream/alerts", None),
    ("GET", "/api/v1/users"): ("/api/v1/users", None),
    ("POST", "/api/v1/users"): ("/api/v1/users", {}),
    ("GET", "/metrics"): ("/metrics", None),
    ("GET", "/api/v1/citizens/reports"): ("/api/v1/citizens/reports", None),
    ("GET", "/api/v1/subjects/requests"): ("/api/v1/subjects/requests", None),
    ("POST", "/api/v1/subjects/requests"): ("/api/v1/subjects/requests", {}),
    ("POST", "/api/v1/subjects/requests/{request_id}/fulfil"): (
        "/api/v1/subjects/requests/nope/fulfil",
        None,
    ),
    ("GET", "/api/v1/consent/counts"): ("/api/v1/consent/counts", None),
    ("GET", "/api/v1/dpo/overview"): ("/api/v1/dpo/overview", None),
}
WHO = [*(r.value for r in Role), None]


def app_endpoints() -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves; mounts as their prefix."""
    platform_free = set()
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in (route.methods or set()) - {"HEAD"}:
                platform_free.add((method, route.path))
    return platform_free


def test_every_route_is_granted_or_explicitly_public(platform: Platform) -> None:
    app = create_app(platform)
    endpoints = app_endpoints()
    for route in app.routes:
        if isinstance(route, Mount):
            endpoints.add(("GET", route.path))
        elif isinstance(route, Route):
            endpoints |= {(m, route.path) for m in (route.methods or set()) - {"HEAD"}}
    undeclared = sorted(e for e in endpoints if not access.is_declared(*e))
    assert undeclared == []
    # And the table names nothing the app does not serve (a stale grant hides a renamed route).
    stale = sorted((g.method, g.path) for g in access.GRANTS if (g.method, g.path) not in endpoints)
    assert stale == []


def test_the_role_matrix_below_covers_every_grant() -> None:
    assert set(CALLS) == {(g.method, g.path) for g in access.GRANTS}


def test_an_endpoint_missing_from_the_table_refuses_every_role(platform: Platform) -> None:
    assert not access.allowed("admin", "GET", "/api/v1/not-in-the-table")
    assert not access.allowed("operator", "DELETE", "/api/v1/alerts/{alert_id}")
    assert access.allowed("operator", "GET", "/api/v1/alerts")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, dict[str, str]]]:
    """One server for the whole matrix (no call in it changes state)."""
    platform = build_platform(tmp_path_factory.mktemp("matrix"))
    add_staff(platform)
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    now = platform.clock.now()
    tokens = {r.value: web.app.state.signer.issue(r.value, r.value, now)[0] for r in Role}
    yield web, tokens
    web.stop()
    platform.close()


@pytest.mark.parametrize("who", WHO, ids=[w or "anonymous" for w in WHO])
@pytest.mark.parametrize("endpoint", sorted(CALLS), ids=lambda e: f"{e[0]} {e[1]}")
def test_role_matrix(
    shared: tuple[WebServer, dict[str, str]], endpoint: tuple[str, str], who: str | None
) -> None:
    web, tokens = shared
    method, template = endpoint
    url, body = CALLS[endpoint]
    headers = bearer(tokens[who]) if who else {}
    with (
        httpx.Client(base_url=web.url, timeout=10) as client,
        client.stream(method, url, headers=headers, json=body) as response,
    ):
        status = response.status_code
        detail = b"" if status < 300 else response.read()
    if template == "/metrics":
        # From the loopback address anyone may scrape (off-loopback is checked below).
        assert status == 200
    elif who is None:
        assert status == 401, detail
    elif access.allowed(who, method, template):
        assert status not in (401, 403), detail
    else:
        assert status == 403, detail
        assert b'"reason":"forbidden"' in detail


def _call_from(platform: Platform, path: str, headers: dict[str, str]) -> httpx.Response:
    """A request arriving from a non-loopback address (the real server only hears loopback)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(platform), client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://civicguard") as c:
            return await c.get(path, headers=headers)

    return asyncio.run(go())


def test_metrics_off_loopback_need_an_admin(platform: Platform) -> None:
    add_staff(platform)
    signer = create_app(platform).state.signer
    now = platform.clock.now()
    assert _call_from(platform, "/metrics", {}).status_code == 401
    operator = signer.issue("operator", "operator", now)[0]
    assert _call_from(platform, "/metrics", bearer(operator)).status_code == 403
    admin = signer.issue("admin", "admin", now)[0]
    response = _call_from(platform, "/metrics", bearer(admin))
    assert response.status_code == 200
    assert "civicguard_readings_accepted_total" in response.text


def test_a_session_of_a_disabled_or_demoted_account_stops_working(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    from sqlalchemy import update

    from civicguard.store import schema

    assert client.get("/api/v1/users", headers=bearer(tokens["admin"])).status_code == 200
    with platform.store.engine.begin() as conn:
        conn.execute(
            update(schema.users).where(schema.users.c.username == "admin").values(role="auditor")
        )
    assert client.get("/api/v1/users", headers=bearer(tokens["admin"])).status_code == 401
    with platform.store.engine.begin() as conn:
        conn.execute(
            update(schema.users).where(schema.users.c.username == "operator").values(disabled=True)
        )
    assert client.get("/api/v1/alerts", headers=bearer(tokens["operator"])).status_code == 401

"""The access table: every route is declared, and each role gets exactly what the table grants."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

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

OPERATOR, ANALYST, ADMIN, AUDITOR, DPO = "operator", "analyst", "admin", "auditor", "dpo"
STAFF = frozenset({OPERATOR, ANALYST, ADMIN, AUDITOR, DPO})
#: Who watches and judges alerts and incidents, and who only checks them.
ALERT_READERS = frozenset({OPERATOR, ANALYST, AUDITOR})


@dataclass(frozen=True)
class Expect:
    """A concrete call of one endpoint (ids that do not exist: no call changes state) and the
    roles a city platform should let through, written here by hand from DESIGN.md's users and
    purpose-bound access, never read from ``govern/access.py``."""

    url: str
    body: dict[str, object] | None
    roles: frozenset[str]


def _e(url: str, roles: frozenset[str] | set[str], body: dict[str, object] | None = None) -> Expect:
    return Expect(url=url, body=body, roles=frozenset(roles))


EXPECTED: dict[tuple[str, str], Expect] = {
    # Who one is, what the city senses and where its devices stand: no personal data.
    ("GET", "/api/v1/auth/me"): _e("/api/v1/auth/me", STAFF),
    ("GET", "/api/v1/catalog"): _e("/api/v1/catalog", STAFF),
    ("GET", "/api/v1/map"): _e("/api/v1/map", STAFF),
    ("GET", "/api/v1/devices"): _e("/api/v1/devices", STAFF),
    # Provisioning issues a device secret, revoking cuts a device off: the platform's engineer.
    ("POST", "/api/v1/devices"): _e("/api/v1/devices", {ADMIN}, {}),
    ("POST", "/api/v1/devices/{device_id}/revoke"): _e("/api/v1/devices/nope/revoke", {ADMIN}),
    # Readings are the data itself: those who watch and investigate (personal streams further
    # need a purpose); running the machine or auditing it gives no right to read them.
    ("GET", "/api/v1/readings"): _e("/api/v1/readings", {OPERATOR, ANALYST}),
    ("GET", "/api/v1/alerts"): _e("/api/v1/alerts", ALERT_READERS),
    ("GET", "/api/v1/alerts/{alert_id}"): _e("/api/v1/alerts/nope", ALERT_READERS),
    ("POST", "/api/v1/alerts/{alert_id}/mark"): _e(
        "/api/v1/alerts/nope/mark", {OPERATOR, ANALYST}, {"verdict": "true"}
    ),
    ("GET", "/api/v1/alerts/{alert_id}/marks"): _e("/api/v1/alerts/nope/marks", ALERT_READERS),
    ("GET", "/api/v1/detectors/feedback"): _e("/api/v1/detectors/feedback", ALERT_READERS),
    ("GET", "/api/v1/incidents"): _e("/api/v1/incidents", ALERT_READERS),
    ("GET", "/api/v1/incidents/{incident_id}"): _e("/api/v1/incidents/nope", ALERT_READERS),
    # The command centre runs incidents; others read them.
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): _e(
        "/api/v1/incidents/nope/acknowledge", {OPERATOR}
    ),
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): _e(
        "/api/v1/incidents/nope/resolve", {OPERATOR}
    ),
    # Refused messages, redacted: to diagnose devices (admin), investigate, and check.
    ("GET", "/api/v1/dead-letters"): _e("/api/v1/dead-letters", {ANALYST, ADMIN, AUDITOR}),
    ("GET", "/api/v1/stream/alerts"): _e("/api/v1/stream/alerts", ALERT_READERS),
    ("GET", "/api/v1/users"): _e("/api/v1/users", {ADMIN}),
    ("POST", "/api/v1/users"): _e("/api/v1/users", {ADMIN}, {}),
    # Anyone from the loopback address (checked below); off loopback only an admin.
    ("GET", "/metrics"): _e("/metrics", {ADMIN}),
    # Residents' reports, scrubbed: those who act on them, and the DPO who answers for them.
    ("GET", "/api/v1/citizens/reports"): _e("/api/v1/citizens/reports", {OPERATOR, ANALYST, DPO}),
    # Subject rights are the DPO's; the auditor checks they were handled, by handle only.
    ("GET", "/api/v1/subjects/requests"): _e("/api/v1/subjects/requests", {DPO, AUDITOR}),
    ("POST", "/api/v1/subjects/requests"): _e("/api/v1/subjects/requests", {DPO}, {}),
    ("POST", "/api/v1/subjects/requests/{request_id}/fulfil"): _e(
        "/api/v1/subjects/requests/nope/fulfil", {DPO}
    ),
    ("GET", "/api/v1/consent/counts"): _e("/api/v1/consent/counts", {DPO, AUDITOR}),
    ("GET", "/api/v1/dpo/overview"): _e("/api/v1/dpo/overview", {DPO, AUDITOR}),
}

#: Reachable without a staff session, each for its own reason (also written by hand).
PUBLIC = {
    ("GET", "/"),  # the command-centre page: a sign-in form until signed in
    ("GET", "/dpo"),  # the DPO page: signs in the same way, data through the API
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/ingest"),  # devices bring their own credentials
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/openapi.json"),
    ("GET", "/static"),
    ("GET", "/docs-assets"),
    # The citizen app's backend is a device and signs with its own secret:
    ("POST", "/api/v1/citizens/consent/grant"),
    ("POST", "/api/v1/citizens/consent/withdraw"),
    ("POST", "/api/v1/citizens/export"),
    ("POST", "/api/v1/citizens/erasure"),
    ("POST", "/api/v1/citizens/reports"),  # residents report without an account
    ("GET", "/api/v1/citizens/consent/public-key"),
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


def served_endpoints(platform: Platform) -> set[tuple[str, str]]:
    """(method, path template) of everything the app serves, mounts as their prefix."""
    app = create_app(platform)
    endpoints = app_endpoints()
    for route in app.routes:
        if isinstance(route, Mount):
            endpoints.add(("GET", route.path))
        elif isinstance(route, Route):
            endpoints |= {(m, route.path) for m in (route.methods or set()) - {"HEAD"}}
    return endpoints


def test_every_route_is_granted_or_explicitly_public(platform: Platform) -> None:
    endpoints = served_endpoints(platform)
    undeclared = sorted(e for e in endpoints if not access.is_declared(*e))
    assert undeclared == []
    # And the table names nothing the app does not serve (a stale grant hides a renamed route).
    stale = sorted((g.method, g.path) for g in access.GRANTS if (g.method, g.path) not in endpoints)
    assert stale == []


def test_every_served_route_has_its_roles_written_below(platform: Platform) -> None:
    """A new route needs a hand-written expectation here, public or staff, before it ships."""
    endpoints = served_endpoints(platform)
    assert sorted(endpoints - PUBLIC - set(EXPECTED)) == []
    assert sorted((PUBLIC | set(EXPECTED)) - endpoints) == []
    assert PUBLIC.isdisjoint(EXPECTED)


def test_the_public_endpoints_are_exactly_those_written_here() -> None:
    assert sorted(access.PUBLIC) == sorted(PUBLIC)


def test_the_roles_are_those_written_here() -> None:
    """A new role needs its column of the matrix written by hand."""
    assert {r.value for r in Role} == STAFF


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
@pytest.mark.parametrize("endpoint", sorted(EXPECTED), ids=lambda e: f"{e[0]} {e[1]}")
def test_role_matrix(
    shared: tuple[WebServer, dict[str, str]], endpoint: tuple[str, str], who: str | None
) -> None:
    web, tokens = shared
    method, template = endpoint
    expect = EXPECTED[endpoint]
    url, body = expect.url, expect.body
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
    elif who in expect.roles:
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

"""Who may call what: one declarative table of endpoints and the staff roles allowed on each.

Deny by default: an endpoint missing from :data:`GRANTS` refuses every role, and only the
endpoints in :data:`PUBLIC` are reachable without a staff session. A test walks every route
of the web app and fails if one is in neither.

The roles, in the city's words:

* **operator** runs the command centre: watches alerts and the map, acknowledges and resolves
  incidents, reads readings of non-personal streams (never personal ones).
* **analyst** investigates: alerts, incidents, readings (personal streams only with a declared
  purpose of the stream), dead letters, the catalog and the device list.
* **admin** runs the platform: provisions and revokes devices, manages staff accounts, reads
  dead letters (to diagnose devices) and metrics. An admin does not watch alerts or read
  readings: running the machine gives no right to the data it carries.
* **auditor** checks, read-only: catalog, alerts, incidents, dead letters, devices and the
  privacy overview.
* **dpo**, the data protection officer, handles subject requests (export, erasure) and reads the
  consent gate's counts and the privacy overview (``/dpo``); subject data reaches the DPO only
  by carrying a request out.

Citizens have no staff session: the citizen app's backend is a provisioned device of a
consent-based stream and authenticates with its device secret on the ``/citizens`` routes
listed in :data:`PUBLIC` (see ``web/routers/citizens.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from civicguard.catalog.model import Category, Stream
from civicguard.govern.accounts import Role

OPERATOR, ANALYST, ADMIN, AUDITOR = Role.OPERATOR, Role.ANALYST, Role.ADMIN, Role.AUDITOR
DPO = Role.DPO
EVERYONE = frozenset(Role)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """The roles that may call one endpoint, and why."""

    method: str
    path: str
    roles: frozenset[Role]
    why: str


def _grant(method: str, path: str, roles: set[Role] | frozenset[Role], why: str) -> Grant:
    return Grant(method=method, path=path, roles=frozenset(roles), why=why)


API = "/api/v1"

#: Every endpoint that needs a staff session, with the roles allowed on it.
GRANTS: tuple[Grant, ...] = (
    _grant("GET", f"{API}/auth/me", EVERYONE, "anyone signed in may see who they are"),
    _grant("GET", f"{API}/catalog", EVERYONE, "what the city senses and why is no secret to staff"),
    _grant("GET", f"{API}/map", EVERYONE, "device sites and streets; no readings"),
    _grant("GET", f"{API}/devices", EVERYONE, "the device fleet, without secrets"),
    _grant("POST", f"{API}/devices", {ADMIN}, "provisioning issues a device secret"),
    _grant("POST", f"{API}/devices/{{device_id}}/revoke", {ADMIN}, "cuts a device off"),
    _grant("GET", f"{API}/readings", {OPERATOR, ANALYST}, "data; personal streams need a purpose"),
    _grant("GET", f"{API}/alerts", {OPERATOR, ANALYST, AUDITOR}, "the alert feed"),
    _grant("GET", f"{API}/alerts/{{alert_id}}", {OPERATOR, ANALYST, AUDITOR}, "one alert"),
    _grant("POST", f"{API}/alerts/{{alert_id}}/mark", {OPERATOR, ANALYST}, "judge an alert"),
    _grant("GET", f"{API}/alerts/{{alert_id}}/marks", {OPERATOR, ANALYST, AUDITOR}, "verdicts"),
    _grant("GET", f"{API}/detectors/feedback", {OPERATOR, ANALYST, AUDITOR}, "tuning figures"),
    _grant("GET", f"{API}/incidents", {OPERATOR, ANALYST, AUDITOR}, "the incident list"),
    _grant("GET", f"{API}/incidents/{{incident_id}}", {OPERATOR, ANALYST, AUDITOR}, "one incident"),
    _grant("POST", f"{API}/incidents/{{incident_id}}/acknowledge", {OPERATOR}, "runs incidents"),
    _grant("POST", f"{API}/incidents/{{incident_id}}/resolve", {OPERATOR}, "runs incidents"),
    _grant("GET", f"{API}/dead-letters", {ANALYST, ADMIN, AUDITOR}, "refused messages, redacted"),
    _grant("GET", f"{API}/stream/alerts", {OPERATOR, ANALYST, AUDITOR}, "live alert feed (SSE)"),
    _grant("GET", f"{API}/users", {ADMIN}, "staff accounts"),
    _grant("POST", f"{API}/users", {ADMIN}, "creating staff accounts"),
    _grant("GET", "/metrics", {ADMIN}, "Prometheus; anonymous only from the loopback address"),
    _grant("GET", f"{API}/citizens/reports", {OPERATOR, ANALYST, DPO}, "scrubbed reports"),
    _grant("GET", f"{API}/subjects/requests", {DPO, AUDITOR}, "subject requests, by handle"),
    _grant("POST", f"{API}/subjects/requests", {DPO}, "a request received by letter or desk"),
    _grant("POST", f"{API}/subjects/requests/{{request_id}}/fulfil", {DPO}, "export or erase"),
    _grant("GET", f"{API}/consent/counts", {DPO, AUDITOR}, "readings refused for no consent"),
    _grant("GET", f"{API}/dpo/overview", {DPO, AUDITOR}, "treatments, counts, keys; no subjects"),
)

#: Endpoints reachable without a staff session; each has its own reason.
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/"),  # the command-centre page itself; it shows a login form until signed in
        ("GET", "/dpo"),  # the DPO page; it signs in like the command centre, data via the API
        ("GET", f"{API}/health"),  # liveness for load balancers
        ("POST", f"{API}/auth/login"),
        ("POST", f"{API}/auth/logout"),  # only clears the caller's own cookie
        ("POST", f"{API}/ingest"),  # devices authenticate with their own credentials
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/openapi.json"),
        ("GET", "/static"),  # our own page's JS and CSS
        ("GET", "/docs-assets"),  # Swagger UI's files, shipped in the fastapi-offline package
        # The citizen app's backend authenticates with its own device secret on these:
        ("POST", f"{API}/citizens/consent/grant"),
        ("POST", f"{API}/citizens/consent/withdraw"),
        ("POST", f"{API}/citizens/export"),
        ("POST", f"{API}/citizens/erasure"),
        ("POST", f"{API}/citizens/reports"),  # residents report without an account (capped)
        ("GET", f"{API}/citizens/consent/public-key"),  # to check a receipt's signature
    }
)

_BY_ENDPOINT = {(g.method, g.path): g for g in GRANTS}

#: Roles that may read readings of personal or special-category streams (with a purpose).
PERSONAL_DATA_ROLES = frozenset({ANALYST})


def is_public(method: str, path: str) -> bool:
    """True if the endpoint needs no staff session."""
    return (method, path) in PUBLIC


def is_declared(method: str, path: str) -> bool:
    """True if the endpoint is in the table, public or granted."""
    return is_public(method, path) or (method, path) in _BY_ENDPOINT


def allowed(role: str, method: str, path: str) -> bool:
    """True if ``role`` may call ``method path`` (a route template); deny by default."""
    grant = _BY_ENDPOINT.get((method, path))
    return grant is not None and role in grant.roles


def may_read_stream(role: str, stream: Stream) -> bool:
    """True if ``role`` may read ``stream``'s readings at all (purpose checks come on top).

    The catalog names a stream's readers; personal data is further kept to the roles in
    :data:`PERSONAL_DATA_ROLES`.
    """
    if role not in stream.readers:
        return False
    return stream.category is Category.NON_PERSONAL or role in PERSONAL_DATA_ROLES

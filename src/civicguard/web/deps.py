"""Dependencies of the API routes: the platform, and the staff session checked against access."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from starlette.routing import Route

from civicguard.govern import access
from civicguard.platform import Platform
from civicguard.web.errors import ApiError
from civicguard.web.sessions import COOKIE_NAME, SessionSigner, StaffSession

#: Where the API lives; routers carry it in their own prefix so that route paths are complete.
API_PREFIX = access.API


def get_platform(request: Request) -> Platform:
    """The platform the app was created for."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if the request has one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def declared_too_large(request: Request, limit: int) -> bool:
    """True if the request's Content-Length is not a number or says more than ``limit``."""
    declared = request.headers.get("content-length")
    return declared is not None and (not declared.isdigit() or int(declared) > limit)


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past ``limit`` (the rest is never buffered)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _token(request: Request) -> str | None:
    return bearer_token(request) or request.cookies.get(COOKIE_NAME)


def current_session(request: Request, platform: PlatformDep) -> StaffSession | None:
    """The signed-in member of staff (bearer token or session cookie), if the session holds."""
    token = _token(request)
    if token is None:
        return None
    signer: SessionSigner = request.app.state.signer
    session = signer.check(token, platform.clock.now())
    if session is None:
        return None
    # Tokens are stateless, so look the account up: a disabled or re-roled account stops at once.
    account = platform.store.users.get(session.username)
    if account is None or account.get("disabled") or account["role"] != session.role:
        return None
    return session


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorise(
    request: Request, session: Annotated[StaffSession | None, Depends(current_session)]
) -> StaffSession | None:
    """Apply the access table to the route being called; deny by default.

    Returns the session (None only on public endpoints and loopback metrics scrapes).
    """
    route = request.scope.get("route")
    # The route template, e.g. /api/v1/incidents/{incident_id}; anything else matches no grant.
    path = route.path if isinstance(route, Route) else ""
    method = request.method
    if access.is_public(method, path):
        return session
    if path == "/metrics" and _is_loopback(request):
        # A Prometheus on the same box scrapes without a session; counts only, no personal data.
        return session
    if session is None:
        raise ApiError(
            401,
            "not_authenticated",
            "sign in first (POST /api/v1/auth/login)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not access.allowed(session.role, method, path):
        raise ApiError(403, "forbidden", f"role {session.role!r} may not call {method} {path}")
    return session


def require_staff(session: Annotated[StaffSession | None, Depends(authorise)]) -> StaffSession:
    """The session of an endpoint that always needs one (authorise has let the caller through)."""
    if session is None:
        raise ApiError(401, "not_authenticated", "sign in first")
    return session


StaffDep = Annotated[StaffSession, Depends(require_staff)]
AuthorisedDep = Annotated[StaffSession | None, Depends(authorise)]

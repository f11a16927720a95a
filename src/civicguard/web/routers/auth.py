"""Staff sign-in: a signed bearer token, also set as an HttpOnly SameSite=Strict cookie."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Request, Response

from civicguard.govern.accounts import verify
from civicguard.govern.throttle import Lockout, LoginThrottle, address_key
from civicguard.platform import Platform
from civicguard.web.deps import API_PREFIX, PlatformDep, StaffDep
from civicguard.web.errors import ApiError, error_responses
from civicguard.web.schemas import LoginRequest, MePublic, SessionPublic
from civicguard.web.sessions import COOKIE_NAME, SessionSigner

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])

_THROTTLE_LOCK = threading.Lock()


def login_throttle(request: Request, platform: Platform) -> LoginThrottle:
    """The app's sign-in throttle (made on first use from the platform's settings and clock).

    One per app, in this process's memory: see ``civicguard.govern.throttle``.
    """
    state = request.app.state
    with _THROTTLE_LOCK:
        throttle: LoginThrottle | None = getattr(state, "login_throttle", None)
        if throttle is None:
            settings = platform.settings
            throttle = state.login_throttle = LoginThrottle(
                platform.clock,
                per_account=settings.login_failures_per_account,
                per_address=settings.login_failures_per_address,
                window_s=settings.login_failure_window,
            )
    return throttle


@router.post(
    "/login",
    response_model=SessionPublic,
    responses=error_responses(
        e401="Unknown user or wrong password (bad_credentials; counted as a failed sign-in).",
        e429="Too many failed sign-ins for this account name or client address "
        "(too_many_failed_sign_ins); the password was not checked. Retry-After says when to "
        "try again.",
    ),
)
def login(
    credentials: LoginRequest, request: Request, response: Response, platform: PlatformDep
) -> SessionPublic:
    """Check a member of staff's password; return a session token and set the session cookie.

    Failed sign-ins are limited per account name and per client address in a sliding window
    (``CIVICGUARD_LOGIN_*`` settings); beyond a limit the answer is 429 and the password is
    not checked.
    """
    throttle = login_throttle(request, platform)
    admitted = throttle.admit(
        credentials.username, address_key(request.client.host if request.client else None)
    )
    if isinstance(admitted, Lockout):
        raise ApiError(
            429,
            "too_many_failed_sign_ins",
            "too many failed sign-ins for this account or from this address; "
            f"try again in {admitted.retry_after_header} s",
            headers={"Retry-After": admitted.retry_after_header},
        )
    try:
        role = verify(platform.store.users, credentials.username, credentials.password)
    except BaseException:
        throttle.abandoned(admitted)
        raise
    if role is None:
        throttle.failed(admitted)
        raise ApiError(401, "bad_credentials", "unknown user or wrong password")
    throttle.succeeded(admitted)
    signer: SessionSigner = request.app.state.signer
    token, session = signer.issue(credentials.username, role.value, platform.clock.now())
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(signer.ttl_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return SessionPublic(
        token=token, username=session.username, role=session.role, expires_at=session.expires_at
    )


@router.post("/logout", status_code=204, response_class=Response)
def logout() -> Response:
    """Forget the session cookie in this browser (tokens expire on their own)."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=MePublic)
def me(session: StaffDep) -> MePublic:
    """The signed-in member of staff."""
    return MePublic(username=session.username, role=session.role, expires_at=session.expires_at)

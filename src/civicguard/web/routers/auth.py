"""Staff sign-in: a signed bearer token, also set as an HttpOnly SameSite=Strict cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from civicguard.govern.accounts import verify
from civicguard.web.deps import API_PREFIX, PlatformDep, StaffDep
from civicguard.web.errors import ApiError
from civicguard.web.schemas import LoginRequest, MePublic, SessionPublic
from civicguard.web.sessions import COOKIE_NAME, SessionSigner

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])


@router.post("/login", response_model=SessionPublic)
def login(
    credentials: LoginRequest, request: Request, response: Response, platform: PlatformDep
) -> SessionPublic:
    """Check a member of staff's password; return a session token and set the session cookie."""
    role = verify(platform.store.users, credentials.username, credentials.password)
    if role is None:
        raise ApiError(401, "bad_credentials", "unknown user or wrong password")
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

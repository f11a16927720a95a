"""Staff accounts (admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from civicguard.govern.accounts import create_user
from civicguard.web.deps import API_PREFIX, PlatformDep
from civicguard.web.errors import ApiError, error_responses
from civicguard.web.schemas import UserCreate, UserPublic

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["staff"])


@router.get("", response_model=list[UserPublic])
def list_users(platform: PlatformDep) -> list[UserPublic]:
    """Every staff account, without password hashes."""
    accounts = platform.store.users.all()
    return [UserPublic(**{**u, "disabled": bool(u["disabled"])}) for u in accounts]


@router.post(
    "",
    response_model=UserPublic,
    status_code=201,
    responses=error_responses(e409="An account of that name exists (user_exists)."),
)
def add_user(body: UserCreate, platform: PlatformDep) -> UserPublic:
    """Create a staff account with a role."""
    if platform.store.users.get(body.username) is not None:
        raise ApiError(409, "user_exists", f"user {body.username!r} already exists")
    now = platform.clock.now()
    try:
        create_user(platform.store.users, body.username, body.password, body.role, now)
    except ValueError as exc:
        raise ApiError(422, "invalid_user", str(exc)) from exc
    return UserPublic(username=body.username, role=body.role, created_at=now)

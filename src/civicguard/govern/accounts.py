"""Staff accounts: creating them with a role and checking passwords (scrypt, per-user salt)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from enum import StrEnum

from civicguard.store.repositories import UserRepository

#: scrypt cost: 2**14 x 8 blocks is about 16 MiB and ~50 ms per check, OWASP's floor for scrypt.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class Role(StrEnum):
    """What a member of staff does; access control grants endpoints to roles, never to people."""

    OPERATOR = "operator"
    ANALYST = "analyst"
    ADMIN = "admin"
    AUDITOR = "auditor"
    #: The data protection officer: handles subject requests (export, erasure) and consent.
    DPO = "dpo"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``password``: ``scrypt$n$r$p$salt$hash`` (salt and hash base64)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """True if ``password`` is the one ``stored`` was made from (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def create_user(
    users_repo: UserRepository, username: str, password: str, role: str, now: float
) -> None:
    """Create a staff account.

    ``ValueError`` for a bad name, a short password, an unknown role or a name already taken.
    """
    if not _USERNAME.match(username):
        raise ValueError(
            "username must be 2-64 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    if role not in {r.value for r in Role}:
        raise ValueError(f"role must be one of {', '.join(r.value for r in Role)}; got {role!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    users_repo.add(username, hash_password(password), role, now)


def verify(users_repo: UserRepository, username: str, password: str) -> Role | None:
    """The role of ``username`` if ``password`` is right and the account is enabled, else None."""
    account = users_repo.get(username)
    if account is None:
        # Spend the same work on unknown names so that timing does not reveal which exist.
        check_password(password, _dummy_hash())
        return None
    if not check_password(password, account["password_hash"]) or account.get("disabled"):
        return None
    return Role(account["role"])


def random_password() -> str:
    """A strong password for a generated account (the initial admin)."""
    return secrets.token_urlsafe(18)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password", salt=b"\0" * 16)

"""Staff accounts and session tokens."""

from __future__ import annotations

import pytest

from civicguard.govern.accounts import Role, check_password, create_user, hash_password, verify
from civicguard.platform import Platform
from civicguard.web.sessions import SessionSigner


def test_create_and_verify(platform: Platform) -> None:
    users = platform.store.users
    create_user(users, "ana.lopez", "a long passphrase", "analyst", 1.0)
    assert verify(users, "ana.lopez", "a long passphrase") is Role.ANALYST
    assert verify(users, "ana.lopez", "a long passphrasE") is None
    assert verify(users, "nobody", "a long passphrase") is None
    stored = users.get("ana.lopez")
    assert stored is not None
    assert stored["password_hash"].startswith("scrypt$")
    assert "a long passphrase" not in stored["password_hash"]


def test_same_password_gets_a_different_salt_each_time() -> None:
    one, two = hash_password("same password"), hash_password("same password")
    assert one != two
    assert check_password("same password", one)
    assert check_password("same password", two)
    assert not check_password("same password", "garbage")


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("x", "a long passphrase", "operator", "username"),
        ("Has Space", "a long passphrase", "operator", "username"),
        ("eve", "short", "operator", "password"),
        ("eve", "a long passphrase", "superuser", "role"),
    ],
)
def test_create_user_refuses_bad_input(
    platform: Platform, username: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_user(platform.store.users, username, password, role, 1.0)


def test_create_user_refuses_a_taken_name(platform: Platform) -> None:
    create_user(platform.store.users, "olga", "a long passphrase", "operator", 1.0)
    with pytest.raises(ValueError, match="exists"):
        create_user(platform.store.users, "olga", "another passphrase", "admin", 1.0)


def test_session_tokens_expire_and_cannot_be_forged() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    token, session = signer.issue("olga", "operator", now=1000.0)
    assert signer.check(token, 1059.0) == session
    assert signer.check(token, 1060.0) is None
    payload, _, mac = token.partition(".")
    forged_payload = payload.replace(payload[:4], "eyJ2")
    assert signer.check(f"{forged_payload}.{mac}", 1001.0) is None
    assert SessionSigner(b"x" * 32).check(token, 1001.0) is None
    assert signer.check("not-a-token", 1001.0) is None

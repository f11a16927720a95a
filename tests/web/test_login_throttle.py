"""Brute-force protection on staff sign-in, through the real app: limits per account and address."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from civicguard.clock import ManualClock
from civicguard.govern import accounts
from civicguard.govern.accounts import Role
from civicguard.govern.throttle import Attempt, Lockout, LoginThrottle, address_key
from civicguard.metrics import METRICS
from civicguard.platform import Platform
from civicguard.web.routers import auth

from .conftest import PASSWORD

LOGIN = "/api/v1/auth/login"
WRONG = "not the password"
#: The defaults of Settings: 5 failures per account, 20 per address, in 15 minutes.
PER_ACCOUNT, PER_ADDRESS, WINDOW = 5, 20, 900.0


def sign_in(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return client.post(LOGIN, json={"username": username, "password": password})


def fail(client: httpx.Client, username: str, times: int) -> None:
    for _ in range(times):
        response = sign_in(client, username, WRONG)
        assert response.status_code == 401, response.text


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The account names whose password the sign-in endpoint checked, in order."""
    names: list[str] = []
    real = auth.verify

    def spy(users: Any, username: str, password: str) -> Role | None:
        names.append(username)
        return real(users, username, password)

    monkeypatch.setattr(auth, "verify", spy)
    return names


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One entry per scrypt password check made by ``accounts.verify`` (known or unknown user)."""
    checks: list[str] = []
    real: Callable[[str, str], bool] = accounts.check_password

    def spy(password: str, stored: str) -> bool:
        checks.append(stored)
        return real(password, stored)

    monkeypatch.setattr(accounts, "check_password", spy)
    return checks


def metric(outcome: str) -> float:
    value = METRICS.registry.get_sample_value(
        "civicguard_staff_sign_ins_total", {"outcome": outcome}
    )
    return value or 0.0


def test_an_account_is_locked_after_five_failures_and_its_password_is_not_checked(
    server: Any, client: httpx.Client, verified: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="civicguard.govern.throttle")
    locked_before = metric("locked_out")
    fail(client, "operator", PER_ACCOUNT)
    assert verified == ["operator"] * PER_ACCOUNT

    response = sign_in(client, "operator")  # the right password, but too late
    assert response.status_code == 429
    assert response.headers["retry-after"] == "900"
    body = response.json()
    assert body["reason"] == "too_many_failed_sign_ins"
    assert "try again in 900 s" in body["detail"]
    assert "set-cookie" not in response.headers
    assert verified == ["operator"] * PER_ACCOUNT  # refused without checking the password
    assert metric("locked_out") == locked_before + 1

    # The lockout was logged once, with the account and the address and never the password.
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert "'operator'" in message
    assert "127.0.0.1" in message
    assert WRONG not in message
    assert PASSWORD not in caplog.text


def test_other_accounts_are_not_locked_by_one_accounts_failures(
    server: Any, client: httpx.Client
) -> None:
    fail(client, "operator", PER_ACCOUNT)
    assert sign_in(client, "operator").status_code == 429
    assert sign_in(client, "analyst").status_code == 200


def test_the_lock_lifts_as_the_failures_leave_the_sliding_window(
    server: Any, client: httpx.Client, clock: ManualClock
) -> None:
    fail(client, "operator", 1)
    clock.advance(300)
    fail(client, "operator", PER_ACCOUNT - 1)
    # The oldest failure leaves the window first: 900 s after it, i.e. 600 s from now.
    assert sign_in(client, "operator").headers["retry-after"] == "600"
    clock.advance(599)
    refused = sign_in(client, "operator")
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    clock.advance(1)
    # One failure has aged out: one more try, and a wrong one locks again until the next ages.
    fail(client, "operator", 1)
    assert sign_in(client, "operator").headers["retry-after"] == "300"
    clock.advance(WINDOW)
    assert sign_in(client, "operator").status_code == 200


def test_a_successful_sign_in_clears_the_accounts_failures(
    server: Any, client: httpx.Client
) -> None:
    here, there = {"X-Forwarded-For": "10.1.1.10"}, {"X-Forwarded-For": "10.1.1.20"}

    def attempt(password: str, headers: dict[str, str]) -> int:
        response = client.post(
            LOGIN, json={"username": "operator", "password": password}, headers=headers
        )
        return response.status_code

    assert [attempt(WRONG, here) for _ in range(PER_ACCOUNT - 1)] == [401] * (PER_ACCOUNT - 1)
    assert attempt(PASSWORD, here) == 200
    # Without the clearing, the first failure from elsewhere would be the fifth, the next refused.
    assert [attempt(WRONG, there) for _ in range(PER_ACCOUNT)] == [401] * PER_ACCOUNT
    assert attempt(WRONG, there) == 429


def test_one_address_is_limited_across_account_names(
    server: Any, client: httpx.Client, clock: ManualClock, verified: list[str]
) -> None:
    for i in range(PER_ADDRESS // 2):  # two failures each: no account comes near its limit
        fail(client, f"guess-{i}", 2)
    response = sign_in(client, "dpo")  # a real account without a failure of its own
    assert response.status_code == 429
    assert response.headers["retry-after"] == "900"
    assert "dpo" not in verified
    clock.advance(WINDOW)
    assert sign_in(client, "dpo").status_code == 200


def test_success_does_not_clear_the_addresss_failures(server: Any, client: httpx.Client) -> None:
    # Otherwise an attacker with one account could sign in between guesses to reset the count.
    for i in range(PER_ADDRESS // 4 - 1):
        fail(client, f"guess-{i}", 4)
        assert sign_in(client, "auditor").status_code == 200
    fail(client, "guess-last", 4)  # the address's twentieth failure
    assert sign_in(client, "auditor").status_code == 429


def test_unknown_names_are_answered_like_known_ones(
    server: Any, client: httpx.Client, hashed: list[str]
) -> None:
    def story(username: str) -> list[tuple[int, dict[str, Any], str | None, int]]:
        seen = []
        for _ in range(PER_ACCOUNT + 2):
            before = len(hashed)
            response = sign_in(client, username, WRONG)
            checks = len(hashed) - before
            seen.append(
                (response.status_code, response.json(), response.headers.get("retry-after"), checks)
            )
        return seen

    known, unknown = story("admin"), story("no-such-person")
    assert known == unknown
    # Five answers of 401, each after one scrypt check (a dummy one for the unknown name),
    # then 429 without any.
    assert [(status, checks) for status, _, _, checks in known] == [(401, 1)] * PER_ACCOUNT + [
        (429, 0)
    ] * 2


def test_concurrent_guesses_cannot_slip_past_the_limit(
    server: Any, client: httpx.Client, verified: list[str]
) -> None:
    lockouts = "civicguard_staff_sign_in_lockouts_total"
    before = METRICS.registry.get_sample_value(lockouts, {"scope": "account"}) or 0.0
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: sign_in(client, "admin", WRONG).status_code, range(12)))
    assert sorted(statuses) == [401] * PER_ACCOUNT + [429] * (12 - PER_ACCOUNT)
    assert len(verified) == PER_ACCOUNT
    # One lockout, counted once however the guesses interleaved.
    assert METRICS.registry.get_sample_value(lockouts, {"scope": "account"}) == before + 1


def test_the_limits_are_settings(platform: Platform, client: httpx.Client) -> None:
    platform.settings = platform.settings.model_copy(
        update={"login_failures_per_account": 2, "login_failure_window": 60.0}
    )
    fail(client, "analyst", 2)
    response = sign_in(client, "analyst")
    assert (response.status_code, response.headers["retry-after"]) == (429, "60")


# -- the throttle on its own ------------------------------------------------------------------


def test_an_attempt_that_ends_in_an_error_is_not_counted() -> None:
    throttle = LoginThrottle(ManualClock(0.0), per_account=1, per_address=5, window_s=60.0)
    attempt = throttle.admit("ana", "10.0.0.1")
    assert isinstance(attempt, Attempt)
    throttle.abandoned(attempt)
    assert isinstance(throttle.admit("ana", "10.0.0.1"), Attempt)
    assert isinstance(throttle.admit("ana", "10.0.0.1"), Lockout)  # the pending one counts


def test_names_with_old_failures_are_forgotten_and_memory_is_bounded() -> None:
    clock = ManualClock(0.0)
    throttle = LoginThrottle(clock, per_account=5, per_address=5, window_s=60.0, max_keys=10)
    for i in range(20):
        attempt = throttle.admit(f"name-{i}", f"10.0.0.{i}")
        assert isinstance(attempt, Attempt)
        throttle.failed(attempt)
    assert len(throttle) == 10
    clock.advance(61)
    throttle.admit("someone", "10.0.1.1")
    assert len(throttle) == 2


def test_ipv6_clients_are_counted_per_64_network() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7" == address_key("192.0.2.7")
    assert address_key(None) == "unknown"


def test_guesses_from_elsewhere_do_not_lock_an_operator_out_of_their_own_console(
    server: Any, client: httpx.Client
) -> None:
    # uvicorn takes the client address from X-Forwarded-For when the proxy is local.
    console = {"X-Forwarded-For": "10.1.1.10"}
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    assert (
        client.post(
            LOGIN, json={"username": "operator", "password": PASSWORD}, headers=console
        ).status_code
        == 200
    )
    for _ in range(PER_ACCOUNT):
        response = client.post(
            LOGIN, json={"username": "operator", "password": WRONG}, headers=attacker
        )
        assert response.status_code == 401
    # The account is locked for everyone else, the attacker included...
    assert (
        client.post(
            LOGIN, json={"username": "operator", "password": PASSWORD}, headers=attacker
        ).status_code
        == 429
    )
    other = {"X-Forwarded-For": "10.1.1.11"}
    assert (
        client.post(
            LOGIN, json={"username": "operator", "password": PASSWORD}, headers=other
        ).status_code
        == 429
    )
    # ...but not at the console the operator has signed in from before.
    assert (
        client.post(
            LOGIN, json={"username": "operator", "password": PASSWORD}, headers=console
        ).status_code
        == 200
    )


def test_a_trusted_address_stays_trusted_only_for_a_while() -> None:
    clock = ManualClock(0.0)
    throttle = LoginThrottle(clock, per_account=1, per_address=10, window_s=600.0, trust_s=3600.0)
    attempt = throttle.admit("ana", "10.0.0.1")
    assert isinstance(attempt, Attempt)
    throttle.succeeded(attempt)
    clock.advance(3000.0)
    throttle.failed(throttle.admit("ana", "10.0.0.9"))  # type: ignore[arg-type]
    assert isinstance(throttle.admit("ana", "10.0.0.9"), Lockout)
    assert isinstance(throttle.admit("ana", "10.0.0.1"), Attempt)
    clock.advance(600.0)  # 3600 s since the sign-in: no longer trusted
    throttle.failed(throttle.admit("ana", "10.0.0.9"))  # type: ignore[arg-type]
    assert isinstance(throttle.admit("ana", "10.0.0.1"), Lockout)

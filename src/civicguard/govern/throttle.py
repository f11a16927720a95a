"""Brute-force protection for staff sign-in: failures counted per account and per address.

Every sign-in attempt is counted as a failure *before* its password is checked, under one
lock, so concurrent guesses cannot slip past a limit between the check and the count; a
successful sign-in then clears its account's failures and takes back the one it added to its
address. Once an account name or a client address has its limit of failures inside the sliding
window, further attempts are refused without their password being checked until the oldest of
those failures ages out. Unknown account names are counted exactly like known ones, so a
refusal says nothing about which names exist.

The state lives in memory, per process: one ``civicguard serve`` runs the API, so that is
every sign-in. Run several API processes and each counts on its own (an attacker then gets
each limit once per process), and a restart forgets every failure. The number of names and
addresses remembered is bounded (``max_keys``): an attacker spraying names from many addresses
evicts the keys that failed longest ago first.

An address an account has signed in from before (within ``trust_s``, 30 days by default) is
exempt from that account's lock, though not from its own address limit: otherwise anyone who
knows an operator's name could lock them out of the command centre, in the middle of an
incident, with five wrong guesses from anywhere. Trusted pairs are remembered in memory too.

IPv6 clients are counted per /64 network: one host usually holds a whole /64, and counting its
single addresses would let it pick a fresh one for every guess.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter

from civicguard.clock import Clock
from civicguard.metrics import METRICS

log = logging.getLogger(__name__)

#: How many account names plus addresses with recent failures are remembered at most (and,
#: apart, how many account-address pairs that signed in).
MAX_KEYS = 100_000
#: How long an address an account signed in from stays exempt from that account's lock.
TRUST_S = 30 * 86_400.0

SIGN_INS = Counter(
    "civicguard_staff_sign_ins",
    "Staff sign-in attempts by outcome (accepted, bad_credentials, locked_out)",
    ["outcome"],
    registry=METRICS.registry,
)
LOCKOUTS = Counter(
    "civicguard_staff_sign_in_lockouts",
    "Account names or client addresses that reached their limit of failed sign-ins",
    ["scope"],
    registry=METRICS.registry,
)

Scope = Literal["account", "address"]


@dataclass(frozen=True)
class Attempt:
    """A sign-in let through to the password check, already counted as a failure at ``at``."""

    account: str
    address: str
    at: float


@dataclass(frozen=True)
class Lockout:
    """A sign-in refused unchecked: ``scopes`` are at their limit for ``retry_after`` seconds."""

    scopes: tuple[Scope, ...]
    retry_after: float

    @property
    def retry_after_header(self) -> str:
        """``retry_after`` as the whole seconds of a ``Retry-After`` header (at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


def address_key(host: str | None) -> str:
    """The address that failures from ``host`` are counted under (IPv6 by its /64 network)."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Sliding-window limits of failed sign-ins per account name and per client address.

    >>> from civicguard.clock import ManualClock
    >>> clock = ManualClock(0.0)
    >>> throttle = LoginThrottle(clock, per_account=2, per_address=10, window_s=60.0)
    >>> for _ in range(2):
    ...     throttle.failed(throttle.admit("ana", "10.0.0.1"))
    >>> throttle.admit("ana", "10.0.0.2")
    Lockout(scopes=('account',), retry_after=60.0)
    >>> clock.advance(60.0)
    >>> isinstance(throttle.admit("ana", "10.0.0.2"), Attempt)
    True
    """

    def __init__(
        self,
        clock: Clock,
        *,
        per_account: int,
        per_address: int,
        window_s: float,
        max_keys: int = MAX_KEYS,
        trust_s: float = TRUST_S,
    ) -> None:
        if per_account < 1 or per_address < 1 or window_s <= 0 or max_keys < 2:
            raise ValueError("limits and max_keys must be positive, the window longer than 0 s")
        self._clock = clock
        self._limits: dict[Scope, int] = {"account": per_account, "address": per_address}
        self.window_s = window_s
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # (scope, name) -> times of its failures inside the window, oldest first. The dict is
        # ordered by each key's latest failure, so the keys that expire first are at its front.
        self._failures: OrderedDict[tuple[Scope, str], deque[float]] = OrderedDict()
        # Keys whose current lockout has been logged and counted (once per lockout).
        self._announced: set[tuple[Scope, str]] = set()
        # (account, address) -> time of its latest successful sign-in, oldest first.
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.trust_s = trust_s

    def admit(self, account: str, address: str) -> Attempt | Lockout:
        """Let a sign-in through to the password check (counted as a failure now), or refuse it.

        ``address`` is a key from :func:`address_key`. Refusals are not counted as failures:
        a locked account is never locked for longer because someone keeps trying.
        """
        now = self._clock.now()
        keys: tuple[tuple[Scope, str], ...] = (("account", account), ("address", address))
        with self._lock:
            self._forget_expired(now)
            waits = {scope: self._wait(scope, name, now) for scope, name in keys}
            if self._is_trusted(account, address, now):
                waits["account"] = 0.0
            locked = tuple(scope for scope, wait in waits.items() if wait > 0)
            if locked:
                SIGN_INS.labels(outcome="locked_out").inc()
                return Lockout(locked, max(waits.values()))
            self._announced.difference_update(keys)
            for key in keys:
                self._add(key, now)
            return Attempt(account, address, now)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: clear the account's failures and uncount this attempt."""
        with self._lock:
            self._drop(("account", attempt.account))
            self._take_back(("address", attempt.address), attempt.at)
            pair = (attempt.account, attempt.address)
            self._trusted.pop(pair, None)
            self._trusted[pair] = attempt.at
            while len(self._trusted) > self._max_keys:
                self._trusted.popitem(last=False)
        SIGN_INS.labels(outcome="accepted").inc()

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong (or the name unknown): the failure stays; log a new lockout."""
        SIGN_INS.labels(outcome="bad_credentials").inc()
        now = self._clock.now()
        keys: tuple[tuple[Scope, str], ...] = (
            ("account", attempt.account),
            ("address", attempt.address),
        )
        with self._lock:
            reached = [
                key
                for key in keys
                if key not in self._announced and self._count(key, now) >= self._limits[key[0]]
            ]
            self._announced.update(reached)
        for scope, _ in reached:
            LOCKOUTS.labels(scope=scope).inc()
            log.warning(
                "staff sign-in locked by %s: %d failed sign-ins within %g s "
                "(account %r, address %s)",
                scope,
                self._limits[scope],
                self.window_s,
                attempt.account,
                attempt.address,
            )

    def abandoned(self, attempt: Attempt) -> None:
        """The check could not be made (an error): uncount the attempt entirely."""
        with self._lock:
            self._take_back(("account", attempt.account), attempt.at)
            self._take_back(("address", attempt.address), attempt.at)

    # -- under the lock ------------------------------------------------------------------------

    def _live(self, key: tuple[Scope, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def _is_trusted(self, account: str, address: str, now: float) -> bool:
        since = self._trusted.get((account, address))
        return since is not None and now - since < self.trust_s

    def _count(self, key: tuple[Scope, str], now: float) -> int:
        times = self._live(key, now)
        return 0 if times is None else len(times)

    def _wait(self, scope: Scope, name: str, now: float) -> float:
        """Seconds until ``name`` may fail once more; 0 if it may now."""
        times = self._live((scope, name), now)
        limit = self._limits[scope]
        if times is None or len(times) < limit:
            return 0.0
        # Below the limit again once all but limit - 1 of its failures have aged out.
        return times[len(times) - limit] + self.window_s - now

    def _add(self, key: tuple[Scope, str], now: float) -> None:
        times = self._failures.get(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=self._limits[key[0]])
        else:
            self._failures.move_to_end(key)
        times.append(now)
        while len(self._failures) > self._max_keys:
            self._drop(next(iter(self._failures)))

    def _take_back(self, key: tuple[Scope, str], at: float) -> None:
        times = self._failures.get(key)
        if times is None:
            return
        try:
            times.remove(at)
        except ValueError:
            return  # already aged out or cleared
        if not times:
            self._drop(key)

    def _forget_expired(self, now: float) -> None:
        """Drop keys whose latest failure has left the window (they are at the front)."""
        horizon = now - self.window_s
        while self._failures:
            key, times = next(iter(self._failures.items()))
            if times and times[-1] > horizon:
                break
            self._drop(key)

    def _drop(self, key: tuple[Scope, str]) -> None:
        self._failures.pop(key, None)
        self._announced.discard(key)

    def __len__(self) -> int:
        """How many account names and addresses are remembered (for tests and debugging)."""
        with self._lock:
            return len(self._failures)

"""Authentication-failure bursts: someone guessing a device's secret or probing the ingest door.

Ingest records every refused authentication as a rejection (``IngestService.refuse``); the
pipeline hands each to :meth:`AuthFailureDetector.on_rejection`. Failures are counted per
claimed device when the registry knows it (a wrong signature for ``pump-003``), and per transport
otherwise (bearer tokens that match nobody, device ids that were never provisioned): keying on
an id the sender invents would let one sender spread its guesses thin, and would let it fill
memory with ids.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from civicguard.catalog.model import Catalog
from civicguard.detect._support import Place, Places, alert, explain, figure
from civicguard.detect.base import Detector
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, Reason, Rejection

#: Refusals that mean "could not prove who it is".
AUTH_FAILURES = frozenset({Reason.BAD_CREDENTIALS, Reason.BAD_SIGNATURE, Reason.UNKNOWN_DEVICE})


@dataclass(kw_only=True)
class _Burst:
    #: Time and reason of the latest failures, at most ``limit`` of them.
    failures: deque[tuple[float, str]]
    last: float = float("-inf")
    alerted: bool = False


class AuthFailureDetector(Detector):
    """Alerts once per burst when ``limit`` authentication failures fall within ``window_s``.

    A burst ends after ``window_s`` without a failure; the next failure starts a new one. The
    defaults (5 failures in 60 s) sit well above a device whose secret was rotated and which
    retries on its usual interval a couple of times, and well below any guessing attack. The
    evidence counts failures by reason; it never holds a presented secret, a signature or the
    body (ingest keeps none of them for unauthenticated senders either).
    """

    name = "auth_failures"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        limit: int = 5,
        window_s: float = 60.0,
    ) -> None:
        self._device = device
        self._places = Places(catalog, device)
        self.limit = limit
        self.window_s = window_s
        self._bursts: dict[tuple[str, str], _Burst] = {}

    def on_rejection(self, rejection: Rejection, now: float) -> list[Alert]:
        """Count an authentication failure; alert on the one that completes a burst."""
        if rejection.reason not in AUTH_FAILURES:
            return []
        known = self._device(rejection.device_id) if rejection.device_id else None
        key = ("device", known.id) if known else ("transport", rejection.transport.value)
        burst = self._bursts.get(key)
        when = rejection.received_at
        if burst is None or when - burst.last > self.window_s:
            burst = self._bursts[key] = _Burst(failures=deque(maxlen=self.limit))
        burst.last = max(burst.last, when)
        burst.failures.append((when, rejection.reason.value))
        span = burst.failures[-1][0] - burst.failures[0][0]
        if burst.alerted or len(burst.failures) < self.limit or span > self.window_s:
            return []
        burst.alerted = True
        return [self._alert(rejection, known, burst, span, now)]

    def _alert(
        self, rejection: Rejection, known: Device | None, burst: _Burst, span: float, now: float
    ) -> Alert:
        transport = rejection.transport.value
        if known is not None:
            place = self._places.of(known.stream, known.id)
            target = place.name
            stream = known.stream
        else:
            place = Place(name=f"the {transport} ingest", cell="", lat=None, lon=None)
            target = f"the {transport} ingest (unknown or unnamed devices)"
            stream = ""
        count = len(burst.failures)
        by_reason = Counter(reason for _, reason in burst.failures)
        reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in by_reason.items())
        return alert(
            detector=self.name,
            kind="auth_failure_burst",
            severity=Severity.HIGH if known else Severity.MEDIUM,
            title=(f"{count} failed authentications in {span:.0f} s at {target} over {transport}"),
            explanation=explain(
                seen=(
                    f"{count} attempts to send as {target} over {transport} failed to "
                    f"authenticate within {figure(span, 0)} s ({reasons})"
                ),
                against=(
                    f"while {self.limit} failures within {figure(self.window_s)} s count as "
                    "a burst; a device with an outdated secret fails once per report"
                ),
                sure=(
                    "Sure that someone is presenting wrong credentials, not who: a "
                    "misconfigured device looks the same at first"
                ),
                detector=self.name,
                score=count / self.limit,
            ),
            stream=stream,
            device_id=known.id if known else None,
            place=place,
            ts=rejection.received_at,
            now=now,
            evidence={
                "failures": count,
                "limit": self.limit,
                "window_s": self.window_s,
                "span_s": span,
                "first_at": burst.failures[0][0],
                "last_at": burst.failures[-1][0],
                "reasons": dict(by_reason),
                "transport": transport,
                "counted_per": "device" if known else "transport",
                "score": count / self.limit,
                "readings": [],
            },
        )

"""Staff session tokens: HMAC-SHA256-signed, expiring, stateless; no FastAPI here."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

#: A console shift; the operator signs in again after it.
SESSION_TTL_S = 12 * 3600.0
COOKIE_NAME = "civicguard_session"


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffSession:
    """Who is signed in, with which role, until when."""

    username: str
    role: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session tokens under one key (``web/session`` in the key store)."""

    def __init__(self, key: bytes, ttl_s: float = SESSION_TTL_S) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, username: str, role: str, now: float) -> tuple[str, StaffSession]:
        """A token for ``username`` acting as ``role``, valid for ``ttl_s`` from ``now``."""
        session = StaffSession(username=username, role=role, expires_at=now + self.ttl_s)
        payload = _b64(orjson.dumps({"u": username, "r": role, "exp": session.expires_at}))
        return f"{payload}.{self._mac(payload)}", session

    def check(self, token: str, now: float) -> StaffSession | None:
        """The session ``token`` carries, or None if it is forged, malformed or expired."""
        payload, _, mac = token.partition(".")
        if not payload or not mac or not hmac.compare_digest(self._mac(payload), mac):
            return None
        try:
            doc = orjson.loads(_unb64(payload))
            session = StaffSession(
                username=str(doc["u"]), role=str(doc["r"]), expires_at=float(doc["exp"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if now < session.expires_at else None

"""Keyed pseudonyms under per-stream keys that rotate every period and die after retention.

One key per (stream, period): the key of stream S for period P is named
``pseudonym/<S>/<start>-<end>`` (Unix seconds) and may be destroyed once S's retention has
passed since the end of P, because by then every reading pseudonymised with it is gone. Keys are
per stream, not shared, so a short-retention stream's key dies with its data and the same plate
seen by two streams never links across them.

A key past that deadline is never created again: a pseudonym asked for in a dead period raises
:class:`KeyExpiredError` (ingest refuses such readings before they get here, as too old).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from civicguard.catalog.model import Catalog, Treatment
from civicguard.privacy.keys import KeyStore

PREFIX = "pseudonym/"
_PLATE_NOISE = re.compile(r"[\s\-.·]")
_NAME = re.compile(r"^pseudonym/(?:(?P<stream>.+)/)?(?P<start>-?\d+)(?:-(?P<end>-?\d+))?$")


def normalise_identifier(kind: str | None, value: str) -> str:
    """The canonical spelling of an identifier, so that one plate or MAC gets one pseudonym.

    >>> normalise_identifier("licence_plate", "ab-123 cd")
    'AB123CD'
    >>> normalise_identifier("mac_address", "AA-BB-CC-00-11-22")
    'aa:bb:cc:00:11:22'
    """
    if kind == "licence_plate":
        return _PLATE_NOISE.sub("", value).upper()
    if kind == "mac_address":
        return value.replace("-", ":").lower()
    return value.strip()


@dataclass(frozen=True, slots=True)
class PseudonymKey:
    """What a pseudonym key's name says: its stream (None for the old shared keys) and period."""

    stream: str | None
    start: float
    end: float

    @property
    def name(self) -> str:
        """The key's name in the key store."""
        return key_name(self.stream, self.start, self.end)


def key_name(stream: str | None, start: float, end: float) -> str:
    """The key-store name of a stream's pseudonym key for the period [start, end).

    >>> key_name("traffic.anpr", 86400.0, 172800.0)
    'pseudonym/traffic.anpr/86400-172800'
    """
    period = f"{start:.0f}-{end:.0f}"
    return f"{PREFIX}{stream}/{period}" if stream else f"{PREFIX}{period}"


def parse_key_name(name: str, rotation_s: float) -> PseudonymKey | None:
    """The stream and period of a pseudonym key's name; None for any other key.

    Names from before per-stream keys (``pseudonym/<period index>``) are read with
    ``rotation_s``.

    >>> parse_key_name("pseudonym/presence.wifi/0-86400", 86400.0)
    PseudonymKey(stream='presence.wifi', start=0.0, end=86400.0)
    >>> parse_key_name("pseudonym/3", 86400.0)
    PseudonymKey(stream=None, start=259200.0, end=345600.0)
    >>> parse_key_name("subject/ab12", 86400.0) is None
    True
    """
    match = _NAME.match(name)
    if match is None:
        return None
    start = float(match.group("start"))
    if match.group("end") is None:  # legacy: a period index
        return PseudonymKey(None, start * rotation_s, (start + 1) * rotation_s)
    return PseudonymKey(match.group("stream"), start, float(match.group("end")))


def pseudonymising_streams(catalog: Catalog) -> dict[str, float]:
    """Streams with a pseudonymised field, with their retention in seconds."""
    return {
        s.name: s.retention_days * 86_400.0
        for s in catalog.streams
        if any(f.treatment is Treatment.PSEUDONYMISE for f in s.fields)
    }


def destruction_deadline(key: PseudonymKey, retention_s: Mapping[str, float]) -> float:
    """When a pseudonym key may be destroyed: its period's end plus its data's retention.

    ``retention_s`` maps pseudonymising streams to their retention; an old shared key (or one
    of a stream no longer in the catalog) waits for the longest of them.
    """
    if key.stream is not None and key.stream in retention_s:
        return key.end + retention_s[key.stream]
    return key.end + max(retention_s.values(), default=0.0)


class KeyExpiredError(LookupError):
    """The pseudonym key of a period is past its destruction deadline (or destroyed)."""

    def __init__(self, name: str, deadline: float) -> None:
        self.name = name
        self.deadline = deadline
        super().__init__(f"pseudonym key {name} is past its retention (since {deadline:.0f})")


class KeyJournal(Protocol):
    """Where key creations and destructions are recorded (the store's ``key_events``)."""

    def record(self, name: str, event: str, at: float, reason: str = "") -> bool:
        """Record ``event`` (created / destroyed) of key ``name``; False if already recorded."""
        ...

    def get(self, name: str) -> dict[str, dict[str, Any]]:
        """The recorded events of key ``name``: event -> {at, reason}."""
        ...

    def destroyed(self, prefix: str = "") -> set[str]:
        """Names (starting with ``prefix``) of keys whose destruction is recorded."""
        ...


class MemoryKeyJournal:
    """A key journal in memory; for tests and throwaway runs."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, dict[str, Any]]] = {}

    def record(self, name: str, event: str, at: float, reason: str = "") -> bool:
        """Record ``event`` of key ``name`` unless it was recorded before."""
        seen = self.events.setdefault(name, {})
        if event in seen:
            return False
        seen[event] = {"at": at, "reason": reason}
        return True

    def get(self, name: str) -> dict[str, dict[str, Any]]:
        """The recorded events of key ``name``."""
        return dict(self.events.get(name, {}))

    def destroyed(self, prefix: str = "") -> set[str]:
        """Names (starting with ``prefix``) of keys whose destruction is recorded."""
        return {n for n, e in self.events.items() if n.startswith(prefix) and "destroyed" in e}


class Pseudonymiser:
    """Keyed HMAC-SHA256 pseudonyms under per-stream keys that rotate every ``rotation_s``."""

    #: Keys held in memory at most; older periods are fetched from the key store again.
    CACHE = 64

    def __init__(
        self,
        keys: KeyStore,
        rotation_s: float,
        retention_s: Mapping[str, float],
        journal: KeyJournal | None = None,
    ) -> None:
        if rotation_s < 1:
            raise ValueError(f"pseudonym rotation must be at least 1 s, got {rotation_s}")
        self._keys = keys
        self.rotation_s = float(rotation_s)
        self.retention_s = dict(retention_s)
        self._journal = journal
        self._cache: dict[tuple[str, int], tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_catalog(
        cls, keys: KeyStore, catalog: Catalog, journal: KeyJournal | None = None
    ) -> Pseudonymiser:
        """The pseudonymiser of a catalog: its rotation and every stream's retention."""
        retention = {s.name: s.retention_days * 86_400.0 for s in catalog.streams}
        return cls(keys, catalog.pseudonym_rotation_s, retention, journal)

    def period(self, ts: float) -> int:
        """The index of the key period that ``ts`` falls in."""
        return int(ts // self.rotation_s)

    def key_of(self, stream: str, ts: float) -> PseudonymKey:
        """The key (stream and period bounds) that pseudonymises ``stream`` at ``ts``."""
        period = self.period(ts)
        return PseudonymKey(stream, period * self.rotation_s, (period + 1) * self.rotation_s)

    def deadline(self, stream: str, ts: float) -> float:
        """When the key of ``stream`` for the period of ``ts`` may be destroyed."""
        if stream not in self.retention_s:
            raise ValueError(f"stream {stream!r} has no retention: it is not in the catalog")
        return self.key_of(stream, ts).end + self.retention_s[stream]

    def _key(self, stream: str, period: int, now: float) -> bytes:
        cached = self._cache.get((stream, period))
        if cached is not None and cached[1] > now:
            return cached[0]
        ts = period * self.rotation_s
        name = self.key_of(stream, ts).name
        deadline = self.deadline(stream, ts)
        if deadline <= now:
            self._cache.pop((stream, period), None)
            raise KeyExpiredError(name, deadline)
        with self._lock:
            key = self._keys.get(name)
            if key is None:
                if self._journal is not None and "destroyed" in self._journal.get(name):
                    raise KeyExpiredError(name, deadline)
                key = self._keys.get_or_create(name)
                if self._journal is not None:
                    self._journal.record(name, "created", now)
            if len(self._cache) >= self.CACHE:
                self._cache.clear()
            self._cache[(stream, period)] = (key, deadline)
        return key

    def forget(self, name: str) -> None:
        """Drop any cached copy of key ``name`` (after it was destroyed)."""
        with self._lock:
            for slot, (_, _) in list(self._cache.items()):
                if self.key_of(slot[0], slot[1] * self.rotation_s).name == name:
                    del self._cache[slot]

    def pseudonym(self, stream: str, kind: str | None, value: str, ts: float, *, now: float) -> str:
        """The pseudonym of ``value`` (an identifier of ``kind``) in ``stream`` at ``ts``.

        ``now`` is when the question is asked: a key past its deadline at ``now`` is not used.
        """
        return digest(self._key(stream, self.period(ts), now), kind, value)

    def keyer(self, stream: str, now: float) -> Callable[[float], bytes]:
        """A function from a reading's time to the stream's key (for columns of identifiers)."""
        rotation = self.rotation_s
        key = self._key

        def key_at(ts: float) -> bytes:
            return key(stream, int(ts // rotation), now)

        return key_at


def digest(key: bytes, kind: str | None, value: str) -> str:
    """The pseudonym of ``value`` under ``key``: ``ps_`` and 32 hex digits of an HMAC-SHA256.

    >>> key = bytes(32)
    >>> digest(key, "licence_plate", "ags 123") == digest(key, "licence_plate", "AGS123")
    True
    """
    message = f"{kind or 'id'}:{normalise_identifier(kind, value)}".encode()
    return "ps_" + hmac.digest(key, message, hashlib.sha256).hex()[:32]

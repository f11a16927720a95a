"""Lawful lookup: the pseudonym a raw identifier had in one stream and period.

Given a stream, a raw identifier and a time, the service answers with the identifier's
pseudonym under that stream's key for the period the time falls in, so that an authority with
a lawful request can find the records. It never creates a key: a period whose key was destroyed
(its data passed retention) or never created (nothing was pseudonymised then) gets a clear
refusal. The raw identifier is never logged nor put into an error message. The approval path
around it (who may ask, the audit record) comes with governance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from civicguard.catalog.model import Catalog, Treatment
from civicguard.clock import Clock
from civicguard.privacy.keys import KeyStore
from civicguard.privacy.pseudonyms import KeyJournal, Pseudonymiser, digest


class LookupRefusedError(LookupError):
    """A lookup that cannot be answered; the message says why (never the identifier)."""


class KeyDestroyedError(LookupRefusedError):
    """The period's key was destroyed: its data passed retention and links to nothing now."""


class KeyNotCreatedError(LookupRefusedError):
    """No key for the period: nothing of the stream was pseudonymised then (or it is ahead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupResult:
    """A pseudonym and the period it is valid for."""

    stream: str
    field: str
    pseudonym: str
    period_start: float
    period_end: float
    #: When the period's key (and so this pseudonym's link to the identifier) is destroyed.
    key_destroyed_after: float


class PseudonymLookup:
    """Answers lawful lookups from live pseudonym keys; never creates one."""

    def __init__(self, catalog: Catalog, keys: KeyStore, journal: KeyJournal, clock: Clock) -> None:
        self.catalog = catalog
        self._keys = keys
        self._journal = journal
        self._clock = clock
        self._periods = Pseudonymiser.for_catalog(keys, catalog, journal)

    def pseudonym(
        self, stream: str, identifier: str, *, at: float, field: str | None = None
    ) -> LookupResult:
        """The pseudonym of ``identifier`` in ``stream`` during the key period holding ``at``.

        ``field`` names the pseudonymised field when the stream has more than one.
        """
        if not self.catalog.has_stream(stream):
            raise LookupRefusedError(f"stream {stream!r} is not in the catalog")
        spec_stream = self.catalog.stream(stream)
        fields = [f for f in spec_stream.fields if f.treatment is Treatment.PSEUDONYMISE]
        if field is not None:
            fields = [f for f in fields if f.name == field]
            if not fields:
                raise LookupRefusedError(f"stream {stream!r} has no pseudonymised field {field!r}")
        if not fields:
            raise LookupRefusedError(f"stream {stream!r} pseudonymises no field: nothing to find")
        if len(fields) > 1:
            names = ", ".join(f.name for f in fields)
            raise LookupRefusedError(f"stream {stream!r} pseudonymises {names}: say which field")
        if not identifier.strip():
            raise LookupRefusedError("the identifier is empty")
        spec = fields[0]
        key_id = self._periods.key_of(stream, at)
        deadline = self._periods.deadline(stream, at)
        period = f"{_iso(key_id.start)} to {_iso(key_id.end)}"
        key = self._keys.get(key_id.name)
        if key is None:
            destroyed = self._journal.get(key_id.name).get("destroyed")
            if destroyed is not None:
                raise KeyDestroyedError(
                    f"the {stream} key for {period} was destroyed at {_iso(destroyed['at'])} "
                    f"({destroyed['reason'] or 'retention'}); its pseudonyms link to nothing"
                )
            if deadline <= self._clock.now():
                raise KeyDestroyedError(
                    f"the {stream} key for {period} is past its retention "
                    f"(since {_iso(deadline)}); it no longer exists"
                )
            raise KeyNotCreatedError(
                f"no {stream} key for {period}: nothing was pseudonymised in that period"
            )
        return LookupResult(
            stream=stream,
            field=spec.name,
            pseudonym=digest(key, spec.identifier, identifier),
            period_start=key_id.start,
            period_end=key_id.end,
            key_destroyed_after=deadline,
        )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")

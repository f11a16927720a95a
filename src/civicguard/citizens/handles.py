"""Subject handles: the stable, keyed stand-in for a citizen id that the store keeps instead.

A handle is an HMAC-SHA256 of the normalised citizen id under the key store's non-rotating
``subject-index`` key: the same citizen always gets the same handle (so consent, requests and
reports link up), and without the key a handle reveals nothing and cannot be recomputed from a
guessed id. The pseudonyms in readings are different: they rotate (see privacy.gateway).
"""

from __future__ import annotations

import hashlib
import hmac

from civicguard.privacy.keys import KeyStore

#: The key the handles are computed under; it never rotates and is never destroyed.
INDEX_KEY = "subject-index"
#: Longest citizen id accepted, in characters.
MAX_ID_LENGTH = 64


class SubjectIdError(ValueError):
    """A citizen id that cannot name a subject (empty, too long, not text)."""


def normalise_citizen_id(citizen_id: object) -> str:
    """The canonical spelling of a citizen id; ``SubjectIdError`` says what is wrong with it.

    >>> normalise_citizen_id("  cit-0042 ")
    'cit-0042'
    """
    if not isinstance(citizen_id, str):
        raise SubjectIdError(f"citizen id must be a string, got {type(citizen_id).__name__}")
    value = citizen_id.strip()
    if not value:
        raise SubjectIdError("citizen id is empty")
    if len(value) > MAX_ID_LENGTH:
        raise SubjectIdError(f"citizen id is longer than {MAX_ID_LENGTH} characters")
    return value


class SubjectIndex:
    """Turns citizen ids into handles (``sub_`` + 32 hex digits)."""

    def __init__(self, keys: KeyStore) -> None:
        self._key = keys.get_or_create(INDEX_KEY)
        self._cache: dict[str, str] = {}

    def handle(self, citizen_id: object) -> str:
        """The handle of ``citizen_id``; ``SubjectIdError`` if it is not a usable id."""
        value = normalise_citizen_id(citizen_id)
        cached = self._cache.get(value)
        if cached is None:
            digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
            cached = "sub_" + digest[:32]
            # Bounded: ingest asks for the handle of every reading of a consent stream.
            if len(self._cache) >= 100_000:
                self._cache.clear()
            self._cache[value] = cached
        return cached

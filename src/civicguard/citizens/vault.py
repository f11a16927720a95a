"""The subject vault: each subject's data sealed under a key of their own (crypto-shredding).

A subject's key lives in the key store as ``subject/<handle>`` and never in the database, nor
in any backup of it. Erasure destroys the key: every sealed copy of the subject's data, in the
live database and in every backup, can then no longer be read.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from civicguard.citizens.records import SubjectRepository
from civicguard.clock import Clock
from civicguard.privacy.keys import KeyStore

NONCE_BYTES = 12


def key_name(handle: str) -> str:
    """The key-store name of a subject's key.

    >>> key_name("sub_00ff")
    'subject/sub_00ff'
    """
    return f"subject/{handle}"


class SubjectVault:
    """Seals and opens subject-linked data under per-subject AES-GCM keys, and shreds them."""

    def __init__(self, keys: KeyStore, subjects: SubjectRepository, clock: Clock) -> None:
        self._keys = keys
        self._subjects = subjects
        self._clock = clock

    def seal(self, handle: str, plaintext: bytes, context: str) -> bytes:
        """Encrypt ``plaintext`` for ``handle``, bound to ``context`` (e.g. the row it goes in)."""
        name = key_name(handle)
        if self._keys.get(name) is None:
            self._subjects.ensure(handle, self._clock.now())
        aead = AESGCM(self._keys.get_or_create(name))
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + aead.encrypt(nonce, plaintext, context.encode())

    def open(self, handle: str, sealed: bytes, context: str) -> bytes | None:
        """Decrypt what :meth:`seal` produced; None once the subject's key is destroyed."""
        key = self._keys.get(key_name(handle))
        if key is None:
            return None
        try:
            return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
        except InvalidTag:
            # Sealed under an earlier key of the same handle (erased, then seen again).
            return None

    def has_key(self, handle: str) -> bool:
        """True while the subject's key exists."""
        return self._keys.get(key_name(handle)) is not None

    def shred(self, handle: str) -> bool:
        """Destroy the subject's key and record when; True if there was a key."""
        destroyed = self._keys.destroy(key_name(handle))
        self._subjects.mark_erased(handle, self._clock.now())
        return destroyed

"""The subject vault: each subject's data sealed under a key of their own (crypto-shredding).

A subject's key lives in the key store as ``subject/<handle>`` and never in the database, nor
in any backup of it. Erasure destroys the key: every sealed copy of the subject's data, in the
live database and in every backup, can then no longer be read. So does retention, once nothing
of the subject is left (:class:`civicguard.citizens.retention.SubjectKeyRetention`).

Sealing and keeping the sealed row happen in one transaction that holds the subject's row
(:meth:`SubjectVault.sealing`), and the key is only ever destroyed inside such a transaction
too (:meth:`SubjectVault.shredding`, the retention sweep). So a key is never destroyed between
sealing something under it and committing the row that keeps it: the destroyer either goes
first (the writer then creates a fresh key) or waits and sees the row.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection

from civicguard.citizens.records import SubjectRepository
from civicguard.clock import Clock
from civicguard.privacy.keys import KeyStore

NONCE_BYTES = 12
#: The key-store namespace of subject keys.
PREFIX = "subject/"


def key_name(handle: str) -> str:
    """The key-store name of a subject's key.

    >>> key_name("sub_00ff")
    'subject/sub_00ff'
    """
    return f"{PREFIX}{handle}"


class Sealing:
    """Seals for one subject inside an open transaction; keep the result on :attr:`conn`.

    The subject's key is fetched, or created, at the first seal: a block that ends before
    sealing anything (a withdrawal with nothing to withdraw) leaves no key behind.
    """

    def __init__(self, key: Callable[[], bytes], conn: Connection) -> None:
        self._key = key
        self._aead: AESGCM | None = None
        #: The transaction that holds the subject; rows written on it commit together.
        self.conn = conn

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt ``plaintext``, bound to ``context`` (e.g. the row it goes in)."""
        if self._aead is None:
            self._aead = AESGCM(self._key())
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())


@dataclass(frozen=True, slots=True)
class Shredded:
    """A subject key destroyed (``destroyed``: there was one) in the open transaction ``conn``."""

    destroyed: bool
    conn: Connection


class SubjectVault:
    """Seals and opens subject-linked data under per-subject AES-GCM keys, and shreds them."""

    def __init__(self, keys: KeyStore, subjects: SubjectRepository, clock: Clock) -> None:
        self._keys = keys
        self._subjects = subjects
        self._clock = clock

    @contextmanager
    def sealing(self, handle: str) -> Iterator[Sealing]:
        """Seal for ``handle`` and keep what was sealed, in one transaction holding the subject.

        Write the sealed rows on ``sealing.conn``: they commit when the block ends, and until
        then no one destroys the key they were sealed under. A subject without a key (new,
        erased, or retired by retention) gets a fresh one.
        """
        now = self._clock.now()
        with self._subjects.held(handle, now) as conn:
            name = key_name(handle)
            if self._keys.get(name) is None:
                self._subjects.restart(conn, handle, now)
            yield Sealing(lambda: self._keys.get_or_create(name), conn)

    def open(self, handle: str, sealed: bytes, context: str) -> bytes | None:
        """Decrypt what :meth:`sealing` sealed; None once the subject's key is destroyed."""
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

    @contextmanager
    def shredding(
        self, handle: str, first: Callable[[Connection, float], None] | None = None
    ) -> Iterator[Shredded]:
        """Destroy the subject's key and record when, in a transaction holding the subject.

        ``first(conn, now)`` runs before the key is destroyed, holding the subject (the
        erasure's entry in the ledger goes there: if writing it fails, nothing is destroyed).
        Delete the subject's rows on ``shredded.conn`` inside the block: they go in the same
        transaction, so a grant or report of the same citizen arriving meanwhile waits, then
        starts afresh under a new key, and is not deleted with the old rows.
        """
        now = self._clock.now()
        with self._subjects.held(handle, now) as conn:
            if first is not None:
                first(conn, now)
            destroyed = self._keys.destroy(key_name(handle))
            self._subjects.mark_erased(handle, now, conn)
            yield Shredded(destroyed=destroyed, conn=conn)

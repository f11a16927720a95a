"""The erasure ledger: which subjects were erased, and when, kept beside the keys.

A backup holds the database and never the keys; that is what lets crypto-shredding reach old
backups. But a restored database also brings back the rows an erasure deleted: consent spans
(not sealed, so still "valid"), the subject's readings (pseudonymised under the stream's keys,
which live on) and the erasure's own record. So the record of erasures lives outside the
database, beside the keys (``keys/erasures.json``, sealed under the key-store key
``seal/erasure-ledger``), and survives every restore:

- ``civicguard backup restore`` re-applies every erasure it lists
  (:meth:`civicguard.citizens.subjects.SubjectRights.reapply`);
- the consent gate, :meth:`ConsentRegistry.valid` and the export ignore what an erasure covers,
  whatever the database says, so a restore made with the database's own tools still cannot
  bring the citizen back.

An entry names the subject by handle only (meaningless without the ``subject-index`` key), with
when the erasure happened, the ids of the consent receipts and reports it removed, the erasure
request it settled, and the pseudonyms the subject's readings carried under the stream keys
alive then (each with its key's name). A citizen who comes back after the erasure starts a new
generation: whatever is dated at or after the erasure and is not among the ids it removed is
theirs anew. The pseudonyms are dropped once their key is destroyed (no reading links to them
any more); the rest is kept while a backup taken before the erasure may be restored.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from civicguard.privacy.keys import KeyStore
from civicguard.privacy.shared_file import SharedFile

#: The key-store key the ledger file is sealed under.
SEAL_KEY = "seal/erasure-ledger"
#: The ledger's file name, in the key store's directory.
FILE_NAME = "erasures.json"
_NONCE = 12
_CONTEXT = b"civicguard erasure ledger v1"


class LedgerError(RuntimeError):
    """The ledger cannot be read (another key store's, or damaged); the message says which."""


@dataclass(frozen=True, slots=True)
class ReadingTrace:
    """The pseudonym an erased subject's readings carried in one stream and key period."""

    stream: str
    field: str
    pseudonym: str
    start: float
    end: float
    #: The pseudonym key's name; the trace is dropped once that key is destroyed.
    key: str


@dataclass(frozen=True, slots=True)
class Erasure:
    """One subject's erasure: everything of theirs from before ``at`` is gone for good."""

    handle: str
    at: float
    by: str = ""
    receipts: frozenset[str] = frozenset()
    reports: frozenset[str] = frozenset()
    #: The erasure requests it settled (the first is the one the DPO sees as done).
    requests: tuple[str, ...] = ()
    readings: tuple[ReadingTrace, ...] = ()

    def covers(self, dated: float, record_id: str, ids: frozenset[str]) -> bool:
        """True if a record dated ``dated`` (one of ``ids`` when the erasure removed it) is
        of the erased generation: older than the erasure, or one it removed by id."""
        return dated < self.at or record_id in ids

    def covers_span(self, granted_at: float, grant_receipt: str) -> bool:
        """True if a consent span granted at ``granted_at`` under ``grant_receipt`` was erased."""
        return self.covers(granted_at, grant_receipt, self.receipts)

    def covers_reading(self, received_at: float) -> bool:
        """True if a reading of the subject received at ``received_at`` was erased."""
        return received_at <= self.at

    def merged(self, other: Erasure) -> Erasure:
        """This erasure and a later (or earlier) one of the same subject, as one."""
        return Erasure(
            handle=self.handle,
            at=max(self.at, other.at),
            by=other.by if other.at >= self.at else self.by,
            receipts=self.receipts | other.receipts,
            reports=self.reports | other.reports,
            requests=tuple(dict.fromkeys(self.requests + other.requests)),
            readings=tuple(dict.fromkeys(self.readings + other.readings)),
        )

    def as_json(self) -> dict[str, Any]:
        """The entry as the ledger file keeps it."""
        return {
            "handle": self.handle,
            "at": self.at,
            "by": self.by,
            "receipts": sorted(self.receipts),
            "reports": sorted(self.reports),
            "requests": list(self.requests),
            "readings": [
                [t.stream, t.field, t.pseudonym, t.start, t.end, t.key] for t in self.readings
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Erasure:
        """An entry read back from the ledger file."""
        return cls(
            handle=str(data["handle"]),
            at=float(data["at"]),
            by=str(data.get("by", "")),
            receipts=frozenset(data.get("receipts", ())),
            reports=frozenset(data.get("reports", ())),
            requests=tuple(data.get("requests", ())),
            readings=tuple(
                ReadingTrace(str(s), str(f), str(p), float(a), float(b), str(k))
                for s, f, p, a, b, k in data.get("readings", ())
            ),
        )


class ErasureLedger(Protocol):
    """Where erasures are recorded, apart from the database (and so from every backup)."""

    def record(self, erasure: Erasure) -> None:
        """Add ``erasure`` (merged with earlier ones of the same subject); durable on return."""
        ...

    def entries(self) -> Mapping[str, Erasure]:
        """Every subject erased, by handle (a cheap read: the consent gate asks per batch)."""
        ...


def _alive_traces(keys: KeyStore, erasure: Erasure) -> Erasure:
    """``erasure`` without the traces of pseudonym keys destroyed since."""
    kept = tuple(t for t in erasure.readings if keys.get(t.key) is not None)
    return erasure if len(kept) == len(erasure.readings) else replace(erasure, readings=kept)


def _merge(entries: dict[str, Erasure], erasure: Erasure) -> None:
    earlier = entries.get(erasure.handle)
    entries[erasure.handle] = erasure if earlier is None else earlier.merged(erasure)


@dataclass
class MemoryErasureLedger:
    """A ledger in memory, for platforms whose keys are in memory too (tests, throwaway runs)."""

    keys: KeyStore
    _entries: dict[str, Erasure] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, erasure: Erasure) -> None:
        """Add ``erasure``."""
        with self._lock:
            entries = dict(self._entries)
            _merge(entries, erasure)
            self._entries = {h: _alive_traces(self.keys, e) for h, e in entries.items()}

    def entries(self) -> Mapping[str, Erasure]:
        """Every subject erased, by handle."""
        return self._entries


class FileErasureLedger:
    """The ledger in one sealed file beside the key store's, shared by every process.

    Kept as the key store's file is (:class:`civicguard.privacy.shared_file.SharedFile`): a
    change takes an exclusive lock, re-reads the file and writes it back whole, so no process
    drops another's entry; reads re-read the file only when it changed on disk.
    """

    def __init__(self, path: Path, keys: KeyStore) -> None:
        self._file = SharedFile(path)
        self._keys = keys
        self._aead = AESGCM(keys.get_or_create(SEAL_KEY))
        self._entries: dict[str, Erasure] = {}
        with self._file.lock:
            self._reload()

    @classmethod
    def in_dir(cls, keys_dir: Path, keys: KeyStore) -> FileErasureLedger:
        """The ledger of a data directory's key store (``keys/erasures.json``)."""
        keys_dir.mkdir(parents=True, exist_ok=True)
        return cls(keys_dir / FILE_NAME, keys)

    def _reload(self) -> None:
        self._file.reload(self._parse)

    def _parse(self, raw: bytes | None) -> None:
        entries: dict[str, Erasure] = {}
        if raw is not None:
            try:
                plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _CONTEXT)
            except (InvalidTag, ValueError):
                raise LedgerError(
                    f"{self._file.path}: cannot be opened with this key store's {SEAL_KEY} key "
                    "(another data directory's ledger, or a damaged file)"
                ) from None
            for item in orjson.loads(plain):
                _merge(entries, Erasure.from_json(item))
        self._entries = entries

    def _save(self, entries: Iterable[Erasure]) -> None:
        plain = orjson.dumps([e.as_json() for e in entries])
        nonce = secrets.token_bytes(_NONCE)
        self._file.write(nonce + self._aead.encrypt(nonce, plain, _CONTEXT))

    def record(self, erasure: Erasure) -> None:
        """Add ``erasure`` and write the ledger back; durable on return."""
        with self._file.exclusive(self._reload):
            entries = dict(self._entries)
            _merge(entries, erasure)
            entries = {h: _alive_traces(self._keys, e) for h, e in entries.items()}
            self._save(entries.values())
            self._entries = entries

    def entries(self) -> Mapping[str, Erasure]:
        """Every subject erased, by handle (re-read if another process changed the file)."""
        with self._file.lock:
            self._reload()
            return self._entries


def ledger_for(keys: KeyStore, keys_dir: Path | None) -> ErasureLedger:
    """The ledger that goes with ``keys``: a file in ``keys_dir`` when the keys are kept on
    disk there, else one in memory (keys in memory die with the process, and so may it)."""
    from civicguard.privacy.keys import FileKeyStore

    if keys_dir is not None and isinstance(keys, FileKeyStore):
        return FileErasureLedger.in_dir(keys_dir, keys)
    return MemoryErasureLedger(keys)

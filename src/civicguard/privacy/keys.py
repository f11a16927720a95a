"""Key store port and adapters: where pseudonymisation and sealing keys live.

The file adapter keeps every key encrypted at rest (AES-GCM) under a master key read from
``CIVICGUARD_MASTER_KEY`` (base64) or from a 0600 file it creates on first run. A city can put
its KMS or Vault behind the same :class:`KeyStore` protocol.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from civicguard.privacy.shared_file import SharedFile

KEY_BYTES = 32
MASTER_KEY_ENV = "CIVICGUARD_MASTER_KEY"


class KeyStore(Protocol):
    """Named secret keys, created on first use and destroyable."""

    def get_or_create(self, name: str) -> bytes:
        """Return the key called ``name``, creating a random one if there is none."""
        ...

    def get(self, name: str) -> bytes | None:
        """Return the key called ``name``, or None if it does not exist (or was destroyed)."""
        ...

    def destroy(self, name: str) -> bool:
        """Destroy the key called ``name``; True if there was one."""
        ...

    def names(self) -> list[str]:
        """Names of the keys alive."""
        ...


class MemoryKeyStore:
    """Keys in memory only; for tests and throwaway runs."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get_or_create(self, name: str) -> bytes:
        """Return the key called ``name``, creating it if needed."""
        with self._lock:
            return self._keys.setdefault(name, secrets.token_bytes(KEY_BYTES))

    def get(self, name: str) -> bytes | None:
        """Return the key called ``name`` if it exists."""
        return self._keys.get(name)

    def destroy(self, name: str) -> bool:
        """Forget the key called ``name``."""
        with self._lock:
            return self._keys.pop(name, None) is not None

    def names(self) -> list[str]:
        """Names of the keys alive."""
        return sorted(self._keys)


def load_master_key(path: Path) -> bytes:
    """The master key from the environment, else from ``path`` (created 0600 if missing)."""
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        key = base64.b64decode(env)
        if len(key) != KEY_BYTES:
            raise ValueError(f"{MASTER_KEY_ENV} must be {KEY_BYTES} bytes, base64-encoded")
        return key
    if path.exists():
        key = base64.b64decode(path.read_bytes())
        if len(key) != KEY_BYTES:
            raise ValueError(f"{path}: master key must be {KEY_BYTES} bytes, base64-encoded")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(base64.b64encode(key))
    return key


class FileKeyStore:
    """Keys in one JSON file, each sealed with AES-GCM under the master key.

    Several processes may share a data directory (``serve``, a ``retention run`` from cron,
    the CLI): every change takes an exclusive lock on ``<file>.lock``, re-reads the file and
    writes it back whole, so that no process writes back a key another one destroyed; reads
    reload the file when it changed on disk.
    """

    def __init__(self, path: Path, master_key: bytes) -> None:
        self._file = SharedFile(path)
        self._aead = AESGCM(master_key)
        self._keys: dict[str, bytes] = {}
        self._reload()

    @classmethod
    def in_dir(cls, data_dir: Path) -> FileKeyStore:
        """The key store of a data directory: ``keys/keys.json`` under ``keys/master.key``."""
        keys_dir = data_dir / "keys"
        keys_dir.mkdir(parents=True, exist_ok=True)
        keys_dir.chmod(0o700)
        return cls(keys_dir / "keys.json", load_master_key(keys_dir / "master.key"))

    def _reload(self) -> None:
        """Read the file again if it changed since this process last read or wrote it."""
        self._file.reload(self._parse)

    def _parse(self, data: bytes | None) -> None:
        keys: dict[str, bytes] = {}
        for name, blob in orjson.loads(data).items() if data is not None else ():
            raw = base64.b64decode(blob)
            keys[name] = self._aead.decrypt(raw[:12], raw[12:], name.encode())
        self._keys = keys

    def _exclusive(self) -> AbstractContextManager[None]:
        """This thread and process alone change the file; the in-memory copy is fresh."""
        return self._file.exclusive(self._reload)

    def _save(self) -> None:
        sealed = {}
        for name, key in self._keys.items():
            nonce = secrets.token_bytes(12)
            sealed[name] = base64.b64encode(
                nonce + self._aead.encrypt(nonce, key, name.encode())
            ).decode()
        self._file.write(orjson.dumps(sealed))

    def get_or_create(self, name: str) -> bytes:
        """Return the key called ``name``, creating and persisting it if needed."""
        key = self.get(name)
        if key is not None:
            return key
        with self._exclusive():
            key = self._keys.get(name)
            if key is None:
                key = self._keys[name] = secrets.token_bytes(KEY_BYTES)
                self._save()
            return key

    def get(self, name: str) -> bytes | None:
        """Return the key called ``name`` if it exists (in this process's latest view)."""
        with self._file.lock:
            self._reload()
            return self._keys.get(name)

    def destroy(self, name: str) -> bool:
        """Destroy the key called ``name`` and persist its absence."""
        with self._exclusive():
            if self._keys.pop(name, None) is None:
                return False
            self._save()
            return True

    def names(self) -> list[str]:
        """Names of the keys alive."""
        with self._file.lock:
            self._reload()
            return sorted(self._keys)


class Sealer:
    """Seals small secrets (device credentials) with AES-GCM under a key-store key."""

    def __init__(self, keys: KeyStore, key_name: str = "seal/device-secrets") -> None:
        self._aead = AESGCM(keys.get_or_create(key_name))

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        """Encrypt ``plaintext`` bound to ``context``."""
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        """Decrypt what :meth:`seal` produced with the same ``context``."""
        return self._aead.decrypt(sealed[:12], sealed[12:], context)

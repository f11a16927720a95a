"""The device registry: who may send readings, on which stream, and how each proves who it is.

Every device has one random secret. Over HTTP it is presented as a bearer token or used as the
key of an HMAC-SHA256 over the request body; on MQTT it is the device's broker password (the
broker's ACL binds the username to the device's own topic) or the key of a signed payload.
Secrets are sealed at rest; only their holders and the registry in memory ever see them.

Several processes hold a registry over one store (``serve``, the workers, the CLI). A device
provisioned or revoked by another process reaches this one within ``CHECK_EVERY`` seconds:
whenever a device is looked up, at most every ``CHECK_EVERY`` seconds, the registry asks the
store for a summary of the devices table (one aggregate query: how many, how many revoked,
the latest creation and revocation) and reloads everything when it changed. No query per
request, no cache that can stay stale for long, and no schema change.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from civicguard.catalog.model import Catalog
from civicguard.ingest.model import Device, Reason
from civicguard.privacy.keys import Sealer
from civicguard.store.repositories import DeviceRepository

log = logging.getLogger(__name__)

#: Seconds between two looks at whether another process changed the devices.
CHECK_EVERY = 0.5


class AuthError(Exception):
    """A device could not be authenticated; ``reason`` says why."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 a device sends with ``body``.

    >>> sign("s3cret", b"{}")[:16]
    'adbde1ce40c89c14'
    """
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class DeviceRegistry:
    """Provisioned devices, cached in memory, persisted through a repository."""

    def __init__(
        self,
        repository: DeviceRepository,
        sealer: Sealer,
        catalog: Catalog,
        *,
        check_every: float = CHECK_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repo = repository
        self._sealer = sealer
        self._catalog = catalog
        self._lock = threading.Lock()
        self._devices: dict[str, Device] = {}
        self._secrets: dict[str, str] = {}
        self._by_token: dict[str, str] = {}
        self._version: tuple[object, ...] = ()
        self._check_every = check_every
        self._monotonic = monotonic
        self._checking = threading.Lock()
        self._next_check = 0.0
        self.reload()

    def refresh(self) -> bool:
        """Reload if another process changed the devices since; True if it did."""
        version = self._repo.version()
        if version == self._version:
            return False
        self.reload(version)
        return True

    def _notice_changes(self) -> None:
        """:meth:`refresh`, at most every ``check_every`` seconds and by one thread at a time
        (the others go on with the devices as they are); a store that cannot be reached
        leaves them as they are too."""
        now = self._monotonic()
        if now < self._next_check or not self._checking.acquire(blocking=False):
            return
        try:
            self._next_check = now + self._check_every
            self.refresh()
        except Exception:  # the database away for a moment must not refuse every device
            log.warning("could not check the store for device changes", exc_info=True)
        finally:
            self._checking.release()

    def reload(self, version: tuple[object, ...] | None = None) -> None:
        """Re-read every device from the store (after another process changed it).

        ``version``: the store's summary read just before (read here if not given), so a
        change made during the reload is noticed at the next check.
        """
        version = self._repo.version() if version is None else version
        devices: dict[str, Device] = {}
        secrets_: dict[str, str] = {}
        for device, sealed in self._repo.all():
            devices[device.id] = device
            secrets_[device.id] = self._sealer.open(sealed, device.id.encode()).decode()
        with self._lock:
            self._devices = devices
            self._secrets = secrets_
            self._by_token = {_token_key(s): d for d, s in secrets_.items()}
            self._version = version

    def _check_new(self, device: Device) -> None:
        if not self._catalog.has_stream(device.stream):
            raise ValueError(f"stream {device.stream!r} is not in the catalog")
        if not device.id or len(device.id) > 64 or "/" in device.id or "+" in device.id:
            raise ValueError("device id must be 1-64 characters without '/' or '+'")

    def provision(self, device: Device, now: float) -> str:
        """Register ``device`` and return its new secret (shown once, never stored in clear)."""
        self._check_new(device)
        secret = secrets.token_urlsafe(32)
        self._repo.add(device, self._sealer.seal(secret.encode(), device.id.encode()), now)
        with self._lock:
            self._devices[device.id] = device
            self._secrets[device.id] = secret
            self._by_token[_token_key(secret)] = device.id
        return secret

    def provision_many(self, devices: Iterable[Device], now: float) -> dict[str, str]:
        """Register many devices in one transaction; return each one's secret."""
        rows = []
        issued: dict[str, str] = {}
        for device in devices:
            self._check_new(device)
            if device.id in self._devices or device.id in issued:
                raise ValueError(f"device {device.id!r} already exists")
            secret = secrets.token_urlsafe(32)
            issued[device.id] = secret
            rows.append((device, self._sealer.seal(secret.encode(), device.id.encode())))
        self._repo.add_many(rows, now)
        with self._lock:
            for device, _ in rows:
                self._devices[device.id] = device
                self._secrets[device.id] = issued[device.id]
                self._by_token[_token_key(issued[device.id])] = device.id
        return issued

    def revoke(self, device_id: str, now: float) -> bool:
        """Revoke a device: from now on everything it sends is refused."""
        if not self._repo.revoke(device_id, now):
            return False
        with self._lock:
            device = self._devices.get(device_id)
            if device is not None:
                self._devices[device_id] = replace(device, revoked=True)
        if device is None:
            self.reload()  # provisioned by another process and not noticed here yet
        return True

    def get(self, device_id: str) -> Device | None:
        """The device with ``device_id``, if provisioned."""
        self._notice_changes()
        return self._devices.get(device_id)

    def all(self) -> list[Device]:
        """Every provisioned device."""
        self._notice_changes()
        return sorted(self._devices.values(), key=lambda d: d.id)

    def secret(self, device_id: str) -> str | None:
        """The device's secret (for the broker's password file and signed MQTT payloads)."""
        return self._secrets.get(device_id)

    def _usable(self, device_id: str | None) -> Device:
        self._notice_changes()
        device = self._devices.get(device_id) if device_id else None
        if device is None:
            raise AuthError(Reason.UNKNOWN_DEVICE, f"device {device_id!r} is not provisioned")
        if device.revoked:
            raise AuthError(Reason.REVOKED_DEVICE, f"device {device_id!r} has been revoked")
        return device

    def by_token(self, token: str) -> Device:
        """The device whose bearer token is ``token``."""
        self._notice_changes()
        device_id = self._by_token.get(_token_key(token))
        if device_id is None:
            raise AuthError(Reason.BAD_CREDENTIALS, "bearer token matches no device")
        return self._usable(device_id)

    def by_signature(self, device_id: str, body: bytes, signature: str) -> Device:
        """The device ``device_id`` if ``signature`` is its HMAC over ``body``."""
        device = self._usable(device_id)
        expected = sign(self._secrets[device_id], body)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            raise AuthError(Reason.BAD_SIGNATURE, f"signature does not match device {device_id!r}")
        return device

    def by_broker_identity(self, device_id: str) -> Device:
        """The device the broker has already authenticated as ``device_id``."""
        return self._usable(device_id)


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

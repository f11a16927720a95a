"""The MQTT adapter: subscribe to the devices' topics on a broker and hand bodies to ingest.

Two ways a device proves who it is over MQTT:

* ``<prefix>/<device>/readings``: the broker authenticated the device (its username is its
  device id, its password its secret) and its ACL lets it write only to its own topic, so the
  topic names the sender.
* ``<prefix>/<device>/signed``: for brokers without per-device credentials, the message is
  ``{"sig": "<hex HMAC-SHA256 of body>", "body": "<JSON text of the reading or batch>"}``
  signed with the device's secret.

The network thread only appends to an inbox; a worker thread drains it in large batches,
grouped by device, so that per-message cost stays close to a bare client's.
"""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import orjson

from civicguard.ingest.decode import ReadingError
from civicguard.ingest.model import Reason, Transport
from civicguard.ingest.mqtt_receiver import READINGS, SIGNED, Login, Receiver, receive_in_child
from civicguard.ingest.registry import AuthError, DeviceRegistry
from civicguard.ingest.service import IngestService

log = logging.getLogger(__name__)


class MqttIngest:
    """A broker subscriber that feeds every device message into :class:`IngestService`.

    ``receiver="thread"`` runs the MQTT client in this process. ``receiver="process"`` runs it
    in a child process that forwards batches through a pipe, so that receiving and the
    pipeline use two cores instead of sharing one interpreter lock.
    """

    def __init__(
        self,
        platform_ingest: IngestService,
        registry: DeviceRegistry,
        host: str,
        port: int,
        username: str = "",
        password: str = "",
        *,
        topic_prefix: str = "civicguard",
        client_id: str = "",
        max_batch: int = 20_000,
        receiver: Literal["thread", "process"] = "thread",
    ) -> None:
        self.ingest = platform_ingest
        self.registry = registry
        self.topic_prefix = topic_prefix.rstrip("/")
        self.max_batch = max_batch
        self.mode = receiver
        self._login = Login(
            host=host,
            port=port,
            username=username,
            password=password,
            topic_prefix=self.topic_prefix,
            client_id=client_id,
        )
        #: Messages handed on to ingest (accepted or kept as dead letters).
        self.handled = 0
        #: Messages lost to an unexpected error inside ingest (logged; should stay 0).
        self.failed = 0
        self._forwarded = 0
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = False
        self._worker: threading.Thread | None = None
        self._receiver: Receiver | None = None
        self._child: Any = None
        self._child_stop: Any = None
        self._reader: threading.Thread | None = None

    @property
    def received(self) -> int:
        """Messages the broker delivered to us."""
        if self._receiver is not None:
            return self._receiver.received
        return self._forwarded

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and start the worker; returns once the subscription is in place."""
        self._stop.clear()
        self._worker = threading.Thread(
            target=self._drain_forever, name="civicguard-mqtt", daemon=True
        )
        self._worker.start()
        try:
            if self.mode == "process":
                self._start_child(timeout)
            else:
                self._receiver = Receiver(self._inbox, self._wake, self._login)
                self._receiver.connect(timeout)
        except BaseException:
            self._receiver = None
            self.stop()
            raise

    def _start_child(self, timeout: float) -> None:
        # spawn, not fork: the platform process already runs threads (processor, worker).
        ctx = multiprocessing.get_context("spawn")
        reader, writer = ctx.Pipe(duplex=False)
        self._child_stop = ctx.Event()
        self._child = ctx.Process(
            target=receive_in_child,
            args=(writer, self._child_stop, self._login, timeout),
            name="civicguard-mqtt-receiver",
            daemon=True,
        )
        self._child.start()
        writer.close()
        if not reader.poll(timeout + 30):
            raise ConnectionError("the MQTT receiver process did not report back")
        status, why = reader.recv()
        if status != "ready":
            raise ConnectionError(why)
        self._reader = threading.Thread(
            target=self._read_child, args=(reader,), name="civicguard-mqtt-pipe", daemon=True
        )
        self._reader.start()

    def _read_child(self, conn: Connection) -> None:
        inbox = self._inbox
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                break
            if batch is None:
                break
            inbox.extend(batch)
            self._forwarded += sum(len(lengths) for _, _, lengths in batch)
            if not self._wake.is_set():
                self._wake.set()
        conn.close()

    def stop(self) -> None:
        """Disconnect, hand what is already buffered to ingest, and stop the worker."""
        if self._receiver is not None:
            self._receiver.close()
        if self._child is not None:
            self._child_stop.set()
            if self._reader is not None:
                self._reader.join(timeout=30)
                self._reader = None
            self._child.join(timeout=10)
            if self._child.is_alive():
                self._child.terminate()
                self._child.join()
            self._child = None
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=60)
            self._worker = None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every message received so far has been handed to ingest."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._inbox and not self._busy:
                return True
            time.sleep(0.005)
        return False

    # -- the worker thread -----------------------------------------------------------------------

    def _drain_forever(self) -> None:
        inbox = self._inbox
        while True:
            if not inbox:
                if self._stop.is_set():
                    return
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            self._busy = True
            n = min(len(inbox), self.max_batch)
            messages = [inbox.popleft() for _ in range(n)]
            if self.mode == "process":
                n = sum(len(lengths) for _, _, lengths in messages)  # type: ignore[misc]
            try:
                if self.mode == "process":
                    self.handle_bundles(messages)  # type: ignore[arg-type]
                else:
                    self.handle(messages)
            except Exception:
                # One bad batch must not stop ingest for the whole city; the count shows it.
                self.failed += n
                log.exception("MQTT batch of %d messages could not be ingested", n)
            finally:
                self.handled += n
                self._busy = False

    def handle(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Ingest ``(topic, payload)`` pairs: group by device, one ingest call per device."""
        by_device: dict[str, list[bytes]] = {}
        for topic, payload in messages:
            device_id, kind = self._route(topic)
            if kind == READINGS:
                by_device.setdefault(device_id, []).append(payload)
            elif kind == SIGNED:
                body = self._verify(device_id, payload)
                if body is not None:
                    by_device.setdefault(device_id, []).append(body)
            else:
                self.ingest.refuse(
                    Reason.UNKNOWN_STREAM,
                    f"topic {topic[:120]!r} is not <prefix>/<device>/readings or /signed",
                    Transport.MQTT,
                    payload,
                )
        for device_id, bodies in by_device.items():
            self._submit(device_id, bodies)

    def handle_bundles(self, bundles: Iterable[tuple[str, bytes, list[int]]]) -> None:
        """Ingest what the receiver process forwards: per topic, joined payloads and lengths.

        A bundle of plain readings from a known device is parsed as one JSON array; anything
        unusual (a malformed or oversized payload, an array payload, a signed topic, an unknown
        device) is split back into its messages and goes through :meth:`handle` one by one, so
        that each refusal keeps its own reason and payload.
        """
        limit = self.ingest.decoder.catalog.limits.max_payload_bytes
        by_device: dict[str, list[Any]] = {}
        single: list[tuple[str, bytes]] = []
        for topic, joined, lengths in bundles:
            device_id, kind = self._route(topic)
            items = None
            if kind == READINGS and max(lengths) <= limit and self.registry.get(device_id):
                try:
                    items = orjson.loads(b"[" + joined + b"]")
                except orjson.JSONDecodeError:
                    items = None
                if items is not None and (
                    len(items) != len(lengths) or any(type(i) is not dict for i in items)
                ):
                    items = None
            if items is None:
                single.extend((topic, payload) for payload in _split(joined, lengths))
            else:
                by_device.setdefault(device_id, []).extend(items)
        if single:
            self.handle(single)
        for device_id, items in by_device.items():
            try:
                device = self.registry.by_broker_identity(device_id)
            except AuthError as exc:
                for item in items:
                    self._refuse(exc.reason, exc.detail, orjson.dumps(item), device_id)
                continue
            self.ingest.submit_items(device, items, Transport.MQTT)

    def _route(self, topic: str) -> tuple[str, str]:
        head = self.topic_prefix + "/"
        if not topic.startswith(head):
            return "", ""
        device_id, _, kind = topic[len(head) :].partition("/")
        return device_id, kind

    def _verify(self, device_id: str, payload: bytes) -> bytes | None:
        """The inner body of a signed message, or None after recording why it was refused."""
        try:
            envelope = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            self._refuse(
                Reason.MALFORMED_JSON, f"signed message is not JSON: {exc}", payload, device_id
            )
            return None
        sig = envelope.get("sig") if isinstance(envelope, dict) else None
        body = envelope.get("body") if isinstance(envelope, dict) else None
        if not isinstance(sig, str) or not isinstance(body, str):
            self._refuse(
                Reason.MISSING_FIELD,
                'signed message must be {"sig": "<hex>", "body": "<JSON text>"}',
                payload,
                device_id,
            )
            return None
        raw = body.encode()
        try:
            self.registry.by_signature(device_id, raw, sig)
        except AuthError as exc:
            self._refuse(exc.reason, exc.detail, payload, device_id)
            return None
        return raw

    def _refuse(self, reason: Reason, detail: str, payload: bytes, device_id: str) -> None:
        self.ingest.refuse(reason, detail, Transport.MQTT, payload, device_id=device_id or None)

    def _submit(self, device_id: str, bodies: list[bytes]) -> None:
        try:
            device = self.registry.by_broker_identity(device_id)
        except AuthError as exc:
            for body in bodies:
                self._refuse(exc.reason, exc.detail, body, device_id)
            return
        items: list[Any] = []
        parse = self.ingest.decoder.parse_body
        for body in bodies:
            try:
                items.extend(parse(body))
            except ReadingError:
                # ingest records the refusal with its reason (malformed JSON, oversized...).
                self.ingest.submit(device, body, Transport.MQTT)
        if items:
            self.ingest.submit_items(device, items, Transport.MQTT)


def _split(joined: bytes, lengths: list[int]) -> list[bytes]:
    """The payloads that ``b",".join`` put together, given their lengths."""
    out, at = [], 0
    for n in lengths:
        out.append(joined[at : at + n])
        at += n + 1
    return out


def write_mosquitto_auth(
    registry: DeviceRegistry,
    directory: Path | str,
    platform_user: str,
    password: str,
    *,
    topic_prefix: str = "civicguard",
    gateways: Mapping[str, str] | None = None,
    mosquitto_passwd: str = "mosquitto_passwd",  # noqa: S107 - the binary's name
) -> tuple[Path, Path]:
    """Write Mosquitto's password file and ACL for every usable device; return both paths.

    Each device logs in with its id and secret and may write only its own topics; the platform
    user may read every device's topics; each of ``gateways`` (user -> password) may publish
    signed payloads for any device. Revoked devices get no login. The password file is hashed
    with the ``mosquitto_passwd`` binary (Debian package mosquitto).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    prefix = topic_prefix.rstrip("/")
    logins: dict[str, str] = {platform_user: password, **(gateways or {})}
    for device in registry.all():
        secret = registry.secret(device.id)
        if secret is not None and not device.revoked:
            logins[device.id] = secret
    for user in logins:
        if not user or any(c in user for c in ":\n#+/"):
            raise ValueError(f"{user!r} cannot be a broker username")
    password_file = directory / "passwd"
    # Written in clear, then hashed in place by mosquitto_passwd -U: one process for all devices.
    password_file.touch(mode=0o600)
    password_file.write_text("".join(f"{u}:{p}\n" for u, p in logins.items()))
    subprocess.run([mosquitto_passwd, "-U", str(password_file)], check=True, capture_output=True)
    acl_file = directory / "acl"
    lines = [
        "# Devices write only their own topics; the broker's username is the device id.",
        f"pattern write {prefix}/%u/{READINGS}",
        f"pattern write {prefix}/%u/{SIGNED}",
        "",
        f"user {platform_user}",
        f"topic read {prefix}/#",
    ]
    for gateway in gateways or {}:
        lines += ["", f"user {gateway}", f"topic write {prefix}/+/{SIGNED}"]
    acl_file.write_text("\n".join(lines) + "\n")
    acl_file.chmod(0o600)
    return password_file, acl_file

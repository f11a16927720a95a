"""The MQTT adapter: subscribe to the devices' topics on a broker and hand bodies to ingest.

Two ways a device proves who it is over MQTT:

* ``<prefix>/<device>/signed``: the message is ``{"sig": "<hex HMAC-SHA256 of body>", "body":
  "<JSON text of the reading or batch>"}`` signed with the device's secret. Works with any
  broker, and the default.
* ``<prefix>/<device>/readings``: only with ``trust_topic`` (``CIVICGUARD_MQTT_TRUST_TOPIC``),
  for a broker that authenticates each device (its username is its device id, its password its
  secret) and whose ACL lets it write only to its own topic (:func:`write_mosquitto_auth`), so
  that the topic names the sender. civicguard cannot see the broker's ACL: without that
  setting, anyone who can log in to the broker could publish as any device, so a message on
  this topic is refused as unauthenticated (``bad_credentials``).

A message is acknowledged to the broker (QoS 1, manual acknowledgement) only once ingest has
made it durable, or kept it as a dead letter: ``submit`` returned. When the event log cannot
take it (unavailable, a full or read-only disk) it is not acknowledged: it is tried again here
while the adapter runs, and after a restart the broker delivers it again from the persistent
session (a ``client_id`` makes the session persistent). A batch that fails inside ingest for
another reason is kept as an ``ingest_failed`` dead letter, then acknowledged. The broker sends
no more unacknowledged messages than its ``max_inflight_messages``: raise it (0 = no limit)
for a busy city.

The network thread only appends to an inbox; a worker thread drains it in large batches,
grouped by device, so that per-message cost stays close to a bare client's.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sqlite3
import subprocess
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy.exc import OperationalError

from civicguard.bus.port import EventLogUnavailable
from civicguard.ingest.decode import ReadingError
from civicguard.ingest.model import Reason, Transport
from civicguard.ingest.mqtt_receiver import (
    READINGS,
    SIGNED,
    Bundle,
    Login,
    Receiver,
    Token,
    bundle,
    receive_in_child,
)
from civicguard.ingest.registry import AuthError, DeviceRegistry
from civicguard.ingest.service import IngestService

log = logging.getLogger(__name__)

#: Seconds between attempts at messages the event log could not take.
RETRY_PAUSE_S = 0.5

UNTRUSTED_TOPIC = (
    "the /readings topic is trusted only when CIVICGUARD_MQTT_TRUST_TOPIC is set (a broker ACL "
    "binds each device to its own topic); sign the message and publish it on /signed"
)


def unavailable(exc: BaseException) -> bool:
    """True if ``exc`` says the event log could not take events now (try again later).

    Such messages are never dead-lettered: nothing is wrong with them.
    """
    return isinstance(
        exc, EventLogUnavailable | OSError | sqlite3.OperationalError | OperationalError
    )


@dataclass(slots=True)
class _Unit:
    """Messages that become durable together: one ingest call, and their tokens."""

    device_id: str
    messages: list[tuple[str, bytes, Token | None]]
    work: Callable[[], object]


@dataclass(slots=True)
class _Outcome:
    """What became of a drained batch: tokens to acknowledge, messages to try again."""

    acks: list[Token] = field(default_factory=list)
    retry: list[tuple[str, bytes, Token | None]] = field(default_factory=list)
    done: int = 0


class MqttIngest:
    """A broker subscriber that feeds every device message into :class:`IngestService`.

    ``receiver="thread"`` runs the MQTT client in this process. ``receiver="process"`` runs it
    in a child process that forwards batches through a pipe, so that receiving and the
    pipeline use two cores instead of sharing one interpreter lock; the tokens of messages made
    durable go back through a second pipe, to be acknowledged there.
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
        trust_topic: bool = False,
    ) -> None:
        self.ingest = platform_ingest
        self.registry = registry
        self.topic_prefix = topic_prefix.rstrip("/")
        self.max_batch = max_batch
        self.mode = receiver
        self.trust_topic = trust_topic
        self._login = Login(
            host=host,
            port=port,
            username=username,
            password=password,
            topic_prefix=self.topic_prefix,
            client_id=client_id,
        )
        #: Messages handed on to ingest for good (accepted or kept as dead letters).
        self.handled = 0
        #: Messages kept as ``ingest_failed`` dead letters: ingest failed on them (logged).
        self.failed = 0
        #: Attempts at messages the event log could not take (tried again, not acknowledged).
        self.deferred = 0
        self._forwarded = 0
        self._inbox: deque[Any] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._busy = False
        self._worker: threading.Thread | None = None
        self._receiver: Receiver | None = None
        self._child: Any = None
        self._child_stop: Any = None
        self._acks: Connection | None = None
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
        self._closing.clear()
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
        acks_in, acks_out = ctx.Pipe(duplex=False)
        self._child_stop = ctx.Event()
        self._child = ctx.Process(
            target=receive_in_child,
            args=(writer, acks_in, self._child_stop, self._login, timeout),
            name="civicguard-mqtt-receiver",
            daemon=True,
        )
        self._child.start()
        writer.close()
        acks_in.close()
        self._acks = acks_out
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
                bundles = conn.recv()
            except (EOFError, OSError):
                break
            if bundles is None:
                break
            inbox.extend(bundles)
            self._forwarded += sum(len(lengths) for _, _, lengths, _ in bundles)
            if not self._wake.is_set():
                self._wake.set()
        conn.close()

    def stop(self) -> None:
        """Stop receiving, hand what is already received to ingest, acknowledge, disconnect.

        Messages the event log cannot take now are not tried again: left unacknowledged, the
        broker delivers them at the next start.
        """
        self._closing.set()
        if self._receiver is not None:
            self._receiver.accepting = False
        if self._child is not None:
            self._child_stop.set()
            if self._reader is not None:
                self._reader.join(timeout=30)
                self._reader = None
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=60)
            self._worker = None
        if self._receiver is not None:
            self._receiver.close()
        if self._child is not None:
            if self._acks is not None:
                with contextlib.suppress(OSError):
                    self._acks.send(None)
                self._acks.close()
                self._acks = None
            self._child.join(timeout=10)
            if self._child.is_alive():
                self._child.terminate()
                self._child.join()
            self._child = None

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
            try:
                n = min(len(inbox), self.max_batch)
                taken = [inbox.popleft() for _ in range(n)]
                bundles: list[Bundle] = taken if self.mode == "process" else bundle(taken)
                outcome = self._handle(bundles)
                self._acknowledge(outcome.acks)
                self.handled += outcome.done
                if outcome.retry and not self._closing.is_set():
                    # Tried first next time; meanwhile the broker holds them unacknowledged.
                    self.deferred += len(outcome.retry)
                    again = bundle(outcome.retry) if self.mode == "process" else outcome.retry
                    inbox.extendleft(reversed(again))
                    self._stop.wait(RETRY_PAUSE_S)
            finally:
                self._busy = False

    def _acknowledge(self, tokens: list[Token]) -> None:
        if not tokens:
            return
        if self._receiver is not None:
            self._receiver.ack(tokens)
        elif self._acks is not None:
            with contextlib.suppress(OSError):  # the receiver is gone: the broker redelivers
                self._acks.send(tokens)

    # -- routing and ingest --------------------------------------------------------------------

    def handle(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Ingest ``(topic, payload)`` pairs that need no acknowledgement (tests, tools)."""
        self._handle(bundle([(t, p, None) for t, p in messages]))

    def handle_bundles(self, bundles: Iterable[Bundle]) -> list[Token]:
        """Ingest bundles as the receiver hands them over; the tokens now safe to acknowledge."""
        return self._handle(list(bundles)).acks

    def _handle(self, bundles: list[Bundle]) -> _Outcome:
        """Group by device, one ingest call per device, and say what became of each message.

        A bundle of plain readings from a known device is parsed as one JSON array; anything
        unusual (a malformed or oversized payload, an array payload, a signed topic, an unknown
        device) is split back into its messages, so that each refusal keeps its own reason.
        """
        limit = self.ingest.decoder.catalog.limits.max_payload_bytes
        fast: dict[str, tuple[list[Any], list[tuple[str, bytes, Token | None]]]] = {}
        bodies: dict[str, list[tuple[tuple[str, bytes, Token | None], bytes]]] = {}
        units: list[_Unit] = []
        for topic, joined, lengths, tokens in bundles:
            device_id, kind = self._route(topic)
            messages = list(
                zip([topic] * len(lengths), _split(joined, lengths), tokens, strict=True)
            )
            if kind == READINGS and not self.trust_topic:
                units.extend(
                    self._refusal(m, Reason.BAD_CREDENTIALS, UNTRUSTED_TOPIC) for m in messages
                )
                continue
            if kind not in (READINGS, SIGNED):
                detail = f"topic is not {self.topic_prefix}/<device>/{READINGS} or /{SIGNED}"
                units.extend(self._refusal(m, Reason.UNKNOWN_STREAM, detail, "") for m in messages)
                continue
            items = None
            if kind == READINGS and max(lengths) <= limit and self.registry.get(device_id):
                items = _as_readings(joined, len(lengths))
            if items is not None:
                group = fast.setdefault(device_id, ([], []))
                group[0].extend(items)
                group[1].extend(messages)
                continue
            for message in messages:
                # A signed message is retried as it came, signature and all.
                body = self._verify(device_id, message, units) if kind == SIGNED else message[1]
                if body is not None:
                    bodies.setdefault(device_id, []).append((message, body))
        for device_id, (items, messages) in fast.items():
            units.append(self._readings(device_id, messages, [p for _, p, _ in messages], items))
        for device_id, pairs in bodies.items():
            units.append(
                self._readings(device_id, [m for m, _ in pairs], [b for _, b in pairs], None)
            )
        outcome = _Outcome()
        for unit in units:
            self._run(unit, outcome)
        return outcome

    def _run(self, unit: _Unit, outcome: _Outcome) -> None:
        """Do one unit's ingest call; on failure defer it, or keep it as a dead letter."""
        tokens = [t for _, _, t in unit.messages if t is not None]
        try:
            unit.work()
        except Exception as exc:  # one bad batch must not stop the whole city
            if unavailable(exc) or not self._dead_letter(unit, exc):
                log.warning(
                    "MQTT: the event log could not take %d message(s) (%s); not acknowledged",
                    len(unit.messages),
                    type(exc).__name__,
                )
                outcome.retry.extend(unit.messages)
                return
        outcome.acks.extend(tokens)
        outcome.done += len(unit.messages)

    def _dead_letter(self, unit: _Unit, exc: Exception) -> bool:
        """Keep a unit ingest failed on as ``ingest_failed`` dead letters; False if it cannot."""
        # Where it failed, not the exception's message: that may quote a value it was given.
        log.error(
            "MQTT batch of %d message(s) failed inside ingest: %s; kept as dead letters\n%s",
            len(unit.messages),
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        detail = f"ingest failed on this message ({type(exc).__name__}); it was not stored"
        device_id = unit.device_id if self.registry.get(unit.device_id) else None
        try:
            for _, payload, _ in unit.messages:
                self.ingest.refuse(
                    Reason.INGEST_FAILED, detail, Transport.MQTT, payload, device_id=device_id
                )
        except Exception:  # the log refuses even a dead letter: try later
            return False
        self.failed += len(unit.messages)
        return True

    def _refusal(
        self,
        message: tuple[str, bytes, Token | None],
        reason: Reason,
        detail: str,
        device_id: str | None = None,
    ) -> _Unit:
        topic, payload, _ = message
        if device_id is None:
            named = self._route(topic)[0]
            device_id = named if named and self.registry.get(named) else ""
        return _Unit(
            device_id=device_id,
            messages=[message],
            work=lambda: self.ingest.refuse(
                reason, detail, Transport.MQTT, payload, device_id=device_id or None
            ),
        )

    def _readings(
        self,
        device_id: str,
        messages: list[tuple[str, bytes, Token | None]],
        bodies: list[bytes],
        items: list[Any] | None,
    ) -> _Unit:
        """One ingest call for a device's messages: already parsed ``items``, or ``bodies``."""
        return _Unit(
            device_id=device_id,
            messages=messages,
            work=lambda: self._submit(device_id, bodies, items),
        )

    def _route(self, topic: str) -> tuple[str, str]:
        head = self.topic_prefix + "/"
        if not topic.startswith(head):
            return "", ""
        device_id, _, kind = topic[len(head) :].partition("/")
        return device_id, kind

    def _verify(
        self, device_id: str, message: tuple[str, bytes, Token | None], units: list[_Unit]
    ) -> bytes | None:
        """The inner body of a signed message, or None after queueing why it is refused."""
        payload = message[1]
        try:
            envelope = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            units.append(
                self._refusal(message, Reason.MALFORMED_JSON, f"signed message is not JSON: {exc}")
            )
            return None
        sig = envelope.get("sig") if isinstance(envelope, dict) else None
        body = envelope.get("body") if isinstance(envelope, dict) else None
        if not isinstance(sig, str) or not isinstance(body, str):
            shape = 'signed message must be {"sig": "<hex>", "body": "<JSON text>"}'
            units.append(self._refusal(message, Reason.MISSING_FIELD, shape))
            return None
        raw = body.encode()
        try:
            self.registry.by_signature(device_id, raw, sig)
        except AuthError as exc:
            units.append(self._refusal(message, exc.reason, exc.detail, device_id))
            return None
        return raw

    def _submit(self, device_id: str, bodies: list[bytes], items: list[Any] | None) -> None:
        try:
            device = self.registry.by_broker_identity(device_id)
        except AuthError as exc:
            for body in bodies:
                self.ingest.refuse(exc.reason, exc.detail, Transport.MQTT, body, device_id)
            return
        if items is None:
            items = []
            parse = self.ingest.decoder.parse_body
            for body in bodies:
                try:
                    items.extend(parse(body))
                except ReadingError:
                    # ingest records the refusal with its reason (malformed JSON, oversized...).
                    self.ingest.submit(device, body, Transport.MQTT)
        if items:
            self.ingest.submit_items(device, items, Transport.MQTT)


def _as_readings(joined: bytes, count: int) -> list[Any] | None:
    """``count`` joined payloads as one list of readings, or None if they are not just that."""
    try:
        items = orjson.loads(b"[" + joined + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(items) != count or any(type(i) is not dict for i in items):
        return None
    return items  # type: ignore[no-any-return]


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
    with the ``mosquitto_passwd`` binary (Debian package mosquitto). With this ACL in place the
    platform may trust the ``/readings`` topic (``CIVICGUARD_MQTT_TRUST_TOPIC=true``).
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

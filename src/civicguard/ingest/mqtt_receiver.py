"""The MQTT receiver: the paho client that subscribes and buffers, in-process or in a child.

Kept apart from the adapter so that the receiver process imports only paho and the standard
library: it starts in a fraction of a second instead of loading the whole platform.

Messages are acknowledged to the broker by hand (paho's ``manual_ack``), never on receipt: each
carries a :data:`Token` (connection, packet id, QoS) that travels with it, and the adapter
hands the tokens back through :meth:`Receiver.ack` once ingest has made the messages durable.
A message never acknowledged stays in the broker's session and comes again at the next
connection. A token of an earlier connection is ignored: its packet id may already name
another message.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

READINGS = "readings"
SIGNED = "signed"

#: (connection number, packet id, QoS) of one received message.
Token = tuple[int, int, int]
#: What the receiver hands on per topic: the topic, the payloads joined with commas (ready to
#: parse as one JSON array), each payload's length, and each message's token (None for messages
#: that need no acknowledgement).
Bundle = tuple[str, bytes, list[int], list["Token | None"]]


def bundle(messages: list[tuple[str, bytes, Token | None]]) -> list[Bundle]:
    """Messages grouped by topic, in order, as :data:`Bundle` s."""
    by_topic: dict[str, tuple[list[bytes], list[Token | None]]] = {}
    for topic, payload, token in messages:
        group = by_topic.get(topic)
        if group is None:
            group = by_topic[topic] = ([], [])
        group[0].append(payload)
        group[1].append(token)
    return [(t, b",".join(p), [len(x) for x in p], k) for t, (p, k) in by_topic.items()]


class Receiver:
    """The paho client: subscribes to the devices' topics and appends each message to an inbox."""

    def __init__(
        self,
        inbox: deque[tuple[str, bytes, Token | None]],
        wake: threading.Event,
        login: Login,
    ) -> None:
        self.inbox = inbox
        self.wake = wake
        self.prefix = login.topic_prefix
        self.login = login
        #: Messages the broker delivered.
        self.received = 0
        #: Connections made so far; a token names the connection its packet id belongs to.
        self.connection = 0
        #: Cleared when closing: later messages are left unacknowledged for the next session.
        self.accepting = True
        # A named client keeps a persistent session: the broker queues QoS 1 messages while
        # we are away. Without a name every start is a fresh, throwaway session.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=login.client_id or f"civicguard-ingest-{secrets.token_hex(4)}",
            clean_session=not login.client_id,
            manual_ack=True,
        )
        if login.username:
            self.client.username_pw_set(login.username, login.password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._refused: str | None = None

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._subscribed.set()
            return
        self.connection += 1
        if getattr(flags, "session_present", False):
            # A resumed session still has its subscriptions, and the broker starts sending the
            # backlog at once, before it answers a new SUBSCRIBE: we are ready now.
            self._subscribed.set()
        # Subscribing again on every (re)connect: a clean session forgets subscriptions.
        prefix = self.prefix
        client.subscribe([(f"{prefix}/+/{READINGS}", 1), (f"{prefix}/+/{SIGNED}", 1)])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            self._refused = f"subscription refused: {', '.join(failed)}"
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # The network thread's only work: every microsecond here caps the whole adapter.
        # paho hands over the received bytes object itself (bytearray only on the sending side).
        if not self.accepting:
            return  # not acknowledged: the broker keeps it for the next session
        qos = message.qos
        token = (self.connection, message.mid, qos) if qos else None
        self.inbox.append((message.topic, message.payload, token))  # type: ignore[arg-type]
        self.received += 1
        if not self.wake.is_set():
            self.wake.set()

    def connect(self, timeout: float) -> None:
        """Connect and subscribe; :class:`ConnectionError` if the broker refuses."""
        login = self.login
        try:
            self.client.connect(login.host, login.port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"MQTT broker {login.host}:{login.port}: {exc}") from exc
        self.client.loop_start()
        if not self._subscribed.wait(timeout) or self._refused:
            why = self._refused or f"no subscription within {timeout} s"
            self.close()
            raise ConnectionError(f"MQTT broker {login.host}:{login.port}: {why}")

    def ack(self, tokens: list[Token]) -> None:
        """Acknowledge these messages to the broker (those of the current connection)."""
        now = self.connection
        ack = self.client.ack
        for connection, mid, qos in tokens:
            if connection == now:
                ack(mid, qos)

    def close(self) -> None:
        """Send what is queued (acknowledgements above all), disconnect, stop the network thread."""
        deadline = time.monotonic() + 5
        while self.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True, slots=True, kw_only=True)
class Login:
    host: str
    port: int
    username: str
    password: str
    topic_prefix: str
    client_id: str


def receive_in_child(
    conn: Connection, acks: Connection, stop: Any, login: Login, timeout: float
) -> None:  # pragma: no cover - runs in the receiver process; covered by the process-mode test
    """The receiver process: forward the broker's messages to the platform in small batches.

    ``acks`` brings back the tokens of messages the platform made durable, to acknowledge; the
    platform sends None on it once it will send no more. When ``stop`` is set the process
    forwards what it holds, sends None on ``conn``, keeps acknowledging until that None, and
    only then disconnects: whatever was not acknowledged by then the broker delivers again.
    """
    inbox: deque[tuple[str, bytes, Token | None]] = deque()
    wake = threading.Event()
    receiver = Receiver(inbox, wake, login)
    try:
        receiver.connect(timeout)
    except ConnectionError as exc:
        conn.send(("refused", str(exc)))
        return
    conn.send(("ready", ""))

    def forward() -> None:
        n = len(inbox)
        if n:
            # One bytes object per topic crosses the pipe, not one tuple per message.
            try:
                conn.send(bundle([inbox.popleft() for _ in range(n)]))
            except OSError:
                stop.set()  # the platform is gone; nothing forwarded is acknowledged

    def acknowledge(wait: float) -> bool:
        """Acknowledge what the platform sent back; False once it is done or gone."""
        try:
            while acks.poll(wait):
                tokens = acks.recv()
                if tokens is None:
                    return False
                receiver.ack(tokens)
                wait = 0
        except (EOFError, OSError):
            return False  # the platform is gone (killed): nothing more will be made durable
        return True

    parent = os.getppid()
    while not stop.is_set():
        # A platform killed with SIGKILL cannot stop us: leave, or this orphan would hold the
        # session's client id against the restarted platform's receiver.
        if not acknowledge(0) or os.getppid() != parent:
            receiver.close()
            return
        if wake.wait(0.02):
            wake.clear()
            # A 20 ms pause gathers a batch: one pipe write (and one pipeline pass) per few
            # hundred messages, which measured best between 5 and 40 ms.
            time.sleep(0.02)
            forward()
    receiver.accepting = False
    forward()
    conn.send(None)
    conn.close()
    while acknowledge(1.0):
        pass
    receiver.close()
    acks.close()

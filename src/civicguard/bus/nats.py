"""The NATS JetStream event log: durable, partitioned by device, one worker per partition.

Ingest processes publish protected batches to a JetStream stream and wait for the
server's acknowledgements, so an accepted reading is on disk before the sender hears
"accepted"; when the server does not acknowledge, :class:`EventLogUnavailable` tells the
sender to come back later. Each partition ``i`` has one durable pull consumer,
``{durable}-{i}``, and one worker consuming it, so a device's detector state lives in one
process. A worker acknowledges what it took only once it is stored (``commit``); what a
failed step took is handed back at once (``release``); what a dead worker took comes back
to its successor within ``ack_wait``, which stays short because a living worker keeps
telling the server it is still working on what it holds.

nats-py is asyncio-only while the platform's ports are synchronous, so each log runs
its own event loop in a private thread and the public methods hand coroutines to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import nats
import nats.errors
import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError

from civicguard.bus.codec import decode, encode
from civicguard.bus.port import Event, EventLogUnavailable
from civicguard.ingest.model import ReadingBatch, Reason, Rejection, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a refused creation of the stream is retried (a restarting server restores it).
STREAM_SETTLE_S = 3.0
#: Seconds before the server gives a delivered, unacknowledged event to the consumer again.
#: A living worker renews its hold every third of it, however long a step takes, so this
#: only decides how soon a dead worker's events reach its restarted successor.
ACK_WAIT_S = 5.0
#: Extra seconds a caller waits beyond a call's own timeout before giving up on the loop.
_GRACE = 10.0
#: Seconds to wait for events already in the stream once a consume has its first one.
_READY = 0.01
#: A publish that no stream answered ("no responders": it was not stored) is sent again this
#: many times, this many seconds apart. A stream that was just created, or whose server has
#: just restarted, can take a moment to listen on its subjects.
_NO_STREAM_RETRIES = 3
_NO_STREAM_PAUSE = 0.25
#: What nats-py raises when the server is away, slow or refuses to store.
_NATS_AWAY = (nats.errors.Error, TimeoutError, OSError)


class ConsumerConflictError(RuntimeError):
    """The stream has a consumer whose subjects overlap this partition's (an older layout)."""


class NatsEventLog:
    """An :class:`~civicguard.bus.port.EventLog` over a NATS JetStream stream.

    The stream (file storage, work-queue retention: a message is deleted once a worker
    acknowledges it, so protected data does not linger in the log) is created if missing.
    Events go to ``{subject_prefix}.{p}`` where ``p`` is a partition chosen from the
    event's device, so a device's batches and refusals stay in order within one partition.
    A log consumes one partition, ``partition`` (0 by default when there is only one),
    through the durable consumer ``{durable}-{partition}``; a log that only publishes
    needs no partition.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        durable: str = "workers",
        *,
        subject_prefix: str = "civicguard.events",
        partitions: int = 1,
        partition: int | None = None,
        ack_wait: float = ACK_WAIT_S,
        timeout: float = 10.0,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        if partition is not None and not 0 <= partition < partitions:
            raise ValueError(f"partition {partition} is not in 0..{partitions - 1}")
        if partition is None and partitions == 1:
            partition = 0
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.partitions = partitions
        self.partition = partition
        #: The durable consumer of this log's partition (None: a log that only publishes).
        self.durable = None if partition is None else f"{durable}-{partition}"
        self._base_name = durable
        self.ack_wait = ack_wait
        self.timeout = timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        # Touched only on the loop's thread: messages consumed and not yet committed, and how
        # many of the next consumes take one event each (after a step failed for no outside
        # reason, to find the event it failed on).
        self._taken: list[Msg] = []
        self._one_by_one = 0
        self._keeper: asyncio.Task[None] | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"nats-{stream}", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._connect(), timeout)
        except BaseException:
            self._stop_loop()
            raise

    # -- the synchronous port -------------------------------------------------------

    def publish(self, events: Sequence[Event]) -> None:
        """Append ``events`` and return once JetStream has stored every one.

        Raises :class:`EventLogUnavailable` when the server does not confirm them in time.
        """
        if not events:
            return
        frames = [frame for event in events for frame in self._frames(event)]
        self._call(self._publish(frames), self.timeout)

    def consume(self, max_events: int, timeout: float) -> list[Event]:
        """Up to ``max_events`` events of this log's partition; waits up to ``timeout`` s.

        A message that cannot be read as an event comes back as a refusal (reason
        ``unprocessable_event``, its bytes as payload), so that it is dead-lettered and
        acknowledged like any other event instead of blocking the partition.
        """
        if self._closed or max_events < 1:
            return []
        if self.durable is None:
            raise ValueError(
                f"this log publishes to {self.partitions} partitions and consumes none: "
                "give it a partition to consume"
            )
        # nats-py refuses a zero timeout; a millisecond still drains what is ready.
        wait = max(timeout, 0.001)
        msgs = self._call(self._consume(max_events, wait), wait)
        return [self._event(msg) for msg in msgs]

    def commit(self) -> None:
        """Acknowledge every event ``consume`` returned so far: none will be redelivered."""
        if not self._closed:
            self._call(self._commit(), self.timeout)

    def release(self, *, delay: float = 0.0, one_by_one: bool = False) -> None:
        """Hand back every event consumed and not committed, for redelivery.

        They come again first and in order (after ``delay`` seconds, if given: events
        published since may then overtake them). With ``one_by_one`` the next consumes take
        them one event at a time, so that an event no worker can handle is found and can be
        dead-lettered without its neighbours. A worker whose database is away waits before
        it consumes again; the log itself does not hold the events back.
        """
        if not self._closed:
            self._call(self._release(delay, one_by_one), self.timeout)

    def deliveries(self) -> int:
        """How many times the events consumed and not committed were delivered (the most)."""
        if self._closed:
            return 0
        return self._call(self._deliveries(), self.timeout)

    def start_consuming(self) -> None:
        """Create or check this partition's consumer now rather than at the first consume.

        Raises :class:`ConsumerConflictError` when the stream holds a consumer, left from an
        older layout, that takes this partition's subjects and cannot be removed safely.
        """
        if self.durable is None:
            raise ValueError("a log without a partition consumes nothing")
        self._call(self._subscription(), self.timeout)

    def pending(self) -> int:
        """Events not yet delivered to this consumer (before its first consume: the stream's)."""
        if self._closed:
            return 0
        return self._call(self._pending(), self.timeout)

    def waiting_consumers(self) -> int:
        """Pull requests now waiting on this log's durable consumer: roughly, idle workers."""
        if self._closed:
            return 0
        return self._call(self._waiting(), self.timeout)

    def delete(self) -> None:
        """Delete the whole stream and every event in it (benchmarks and tests)."""
        self._call(self._delete(), self.timeout)

    def close(self) -> None:
        """Hand uncommitted events back for redelivery, disconnect and stop the loop thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._call(self._close(), self.timeout)
        except Exception:  # closing must release the thread whatever the server does
            log.warning("nats event log %s did not close cleanly", self.stream, exc_info=True)
        finally:
            self._stop_loop()

    # -- plumbing --------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop; NATS being away or silent is :class:`EventLogUnavailable`."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout + _GRACE)
        except FutureTimeout:
            future.cancel()
            waited = timeout + _GRACE
            raise EventLogUnavailable(
                f"NATS at {self.url} did not answer in {waited:.0f} s"
            ) from None
        except _NATS_AWAY as exc:
            raise EventLogUnavailable(
                f"NATS at {self.url} is unavailable ({type(exc).__name__}: {exc})"
            ) from exc

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def _subject(self, event: Event) -> str:
        if self.partitions == 1:
            return f"{self.subject_prefix}.0"
        # Partition by device: a device's readings and its refusals (a replay, say) reach the
        # same worker, whose detectors hold that device's whole state. Ingest batches are
        # single-device by construction.
        key = event.device_ids[0] if isinstance(event, ReadingBatch) and len(event) else None
        if not isinstance(event, ReadingBatch):
            key = event.device_id
        return f"{self.subject_prefix}.{zlib.crc32((key or '').encode()) % self.partitions}"

    def _frames(self, event: Event) -> Iterator[tuple[str, bytes, dict[str, str] | None]]:
        """``(subject, payload, headers)``, halving batches larger than the server allows."""
        data = encode(event)
        limit = self._nc.max_payload if self._nc is not None else len(data)
        if len(data) > limit and isinstance(event, ReadingBatch) and len(event) > 1:
            half = len(event) // 2
            yield from self._frames(event.take(np.arange(half, dtype=np.intp)))
            yield from self._frames(event.take(np.arange(half, len(event), dtype=np.intp)))
            return
        yield self._subject(event), data, _message_id(event)

    def _event(self, msg: Msg) -> Event:
        """The event a message carries, or a refusal saying it carries none we can read."""
        try:
            return decode(msg.data)
        except (ValueError, KeyError, TypeError) as exc:
            meta = msg.metadata
            log.error(
                "event %s on %s cannot be read (%s); it goes to the dead letters",
                meta.sequence.stream,
                msg.subject,
                type(exc).__name__,
            )
            return Rejection(
                # One message is one dead letter, however often it is delivered.
                id=uuid.uuid5(
                    uuid.NAMESPACE_URL, f"civicguard:nats:{self.stream}:{meta.sequence.stream}"
                ).hex,
                reason=Reason.UNPROCESSABLE_EVENT,
                detail=(
                    f"event log message {meta.sequence.stream} on {msg.subject} is not an "
                    f"event this version can read ({type(exc).__name__})"
                ),
                transport=Transport.EVENT_LOG,
                received_at=meta.timestamp.timestamp() if meta.timestamp else time.time(),
                payload=msg.data,
            )

    async def _connect(self) -> None:
        self._nc = await nats.connect(
            self.url,
            name=f"civicguard-{self.durable or self._base_name}",
            connect_timeout=self.timeout,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
        )
        self._js = self._nc.jetstream(timeout=self.timeout)
        try:
            await self._ensure_stream()
        except BaseException:
            await self._nc.close()
            raise
        self._keeper = asyncio.get_running_loop().create_task(self._keep_holding())

    async def _ensure_stream(self) -> None:
        """Find the stream, or create it.

        A server that has just restarted may answer "not found" while it is still restoring
        its streams from disk, then refuse the creation because the restored stream already
        covers the subjects; another process may create it between the two calls, too. So a
        refused creation looks again, for a few seconds, before it is an error.
        """
        assert self._js is not None
        deadline = asyncio.get_running_loop().time() + STREAM_SETTLE_S
        while True:
            try:
                await self._js.stream_info(self.stream)
                return
            except NotFoundError:
                pass
            try:
                await self._js.add_stream(
                    StreamConfig(
                        name=self.stream,
                        subjects=[f"{self.subject_prefix}.>"],
                        storage=StorageType.FILE,
                        retention=RetentionPolicy.WORK_QUEUE,
                        description="civicguard protected reading batches and refusals",
                    )
                )
            except BadRequestError as refused:
                if asyncio.get_running_loop().time() >= deadline:
                    msg = (
                        f"JetStream on {self.url} has no stream {self.stream!r} and refuses "
                        f"to create it for subjects {self.subject_prefix}.>: "
                        f"{refused.description} (another stream may hold those subjects)"
                    )
                    raise RuntimeError(msg) from refused
                await asyncio.sleep(0.2)
                continue
            log.info("created JetStream stream %s on %s", self.stream, self.url)
            return

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error on %s: %s", self.url, exc)

    async def _on_disconnect(self) -> None:
        if self._closed:
            return
        log.warning("disconnected from nats at %s", self.url)

    async def _on_reconnect(self) -> None:
        log.info("reconnected to nats at %s", self.url)

    async def _publish(self, frames: list[tuple[str, bytes, dict[str, str] | None]]) -> None:
        assert self._js is not None
        # Send everything first and wait for the acks together: one round trip per call,
        # not per event, and the order of sending is the order in the stream.
        for attempt in range(_NO_STREAM_RETRIES + 1):
            acks = [
                await self._js.publish_async(subject, data, headers=headers)
                for subject, data, headers in frames
            ]
            results = await asyncio.wait_for(
                asyncio.gather(*acks, return_exceptions=True), self.timeout
            )
            unheard = [f for f, r in zip(frames, results, strict=True) if _unheard(r)]
            for result in results:
                if isinstance(result, BaseException) and not _unheard(result):
                    raise result
            if not unheard:
                return
            if attempt == _NO_STREAM_RETRIES:
                raise NoStreamResponseError
            # Nothing unheard was stored, so sending it again cannot duplicate it (it can only
            # reorder, when a stream starts listening in the middle of one call).
            log.warning(
                "no stream answered %d of %d events on %s; sending them again",
                len(unheard),
                len(frames),
                self.url,
            )
            frames = unheard
            await asyncio.sleep(_NO_STREAM_PAUSE)

    async def _subscription(self) -> JetStreamContext.PullSubscription:
        if self._sub is None:
            assert self._js is not None and self.durable is not None
            await self._ensure_consumer()
            self._sub = await self._js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        return self._sub

    async def _ensure_consumer(self) -> None:
        """Create this partition's consumer, or bring an existing one to this log's settings."""
        assert self._js is not None and self.durable is not None
        subject = f"{self.subject_prefix}.{self.partition}"
        wanted = ConsumerConfig(
            durable_name=self.durable,
            description=f"civicguard workers of partition {self.partition}",
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_ack_pending=-1,
        )
        try:
            found = await self._js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            await self._clear_older_layout(subject)
            try:
                await self._js.add_consumer(self.stream, wanted)
            except BadRequestError as refused:
                raise ConsumerConflictError(
                    f"JetStream stream {self.stream!r} on {self.url} refuses consumer "
                    f"{self.durable!r} for {subject}: {refused.description}"
                ) from refused
            log.info("created consumer %s on %s for %s", self.durable, self.stream, subject)
            return
        if found.config.filter_subject != subject:
            raise ConsumerConflictError(
                f"consumer {self.durable!r} of stream {self.stream!r} takes "
                f"{found.config.filter_subject!r}, not {subject!r}; remove it "
                f"(nats consumer rm {self.stream} {self.durable}) and start again"
            )
        if found.config.ack_wait != self.ack_wait:
            await self._js.add_consumer(self.stream, wanted)  # an update of the same consumer

    async def _clear_older_layout(self, subject: str) -> None:
        """Remove or refuse consumers whose subjects overlap ``subject`` on the work queue.

        A work-queue stream lets one consumer take each subject. A consumer left by an older
        layout (``workers`` taking every partition) is removed when it is ours by name and
        holds nothing: no event delivered and unacknowledged, no worker waiting on it. Its
        undelivered events stay in the stream for the partition consumers. Anything else is
        a clear error naming it, for the operator to stop what uses it.
        """
        assert self._js is not None
        for other in await self._js.consumers_info(self.stream):
            taken = other.config.filter_subject or f"{self.subject_prefix}.>"
            if other.name == self.durable or not _overlap(taken, subject):
                continue
            if other.name == self._base_name and _idle(other):
                await self._js.delete_consumer(self.stream, other.name)
                log.warning(
                    "removed consumer %s of stream %s (it took %s, an older layout, and held "
                    "nothing); each partition has its own consumer now",
                    other.name,
                    self.stream,
                    taken,
                )
                continue
            raise ConsumerConflictError(
                f"stream {self.stream!r} on {self.url} has consumer {other.name!r} taking "
                f"{taken!r}, which overlaps partition {self.partition} ({subject}); a "
                "work-queue stream gives each subject to one consumer. Stop what consumes "
                f"through {other.name!r} (a worker of an older layout, or one run with another "
                f"--name) and remove it: nats consumer rm {self.stream} {other.name}"
            )

    async def _consume(self, max_events: int, timeout: float) -> list[Msg]:
        sub = await self._subscription()
        # Wait for one event only: JetStream fills the oldest waiting pull request up to its
        # batch size, so a lingering request for many would let a burst pile up in one
        # request while the events could already be worked on.
        try:
            msgs = await sub.fetch(batch=1, timeout=timeout)
        except TimeoutError:  # nats' TimeoutError is an asyncio.TimeoutError: nothing arrived
            return []
        if self._one_by_one > 0:
            self._one_by_one -= 1
        elif max_events > 1:
            with contextlib.suppress(TimeoutError):
                msgs += await sub.fetch(batch=max_events - 1, timeout=_READY)
        self._taken.extend(msgs)
        return msgs

    async def _keep_holding(self) -> None:
        """Every third of ``ack_wait``, tell the server the events still held are being worked on.

        So a step may take as long as it needs (a database that is slow to answer, say)
        without its events going to another delivery, and ``ack_wait`` only measures how
        long a worker that died goes unnoticed.
        """
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            if not self._taken or self._nc is None or not self._nc.is_connected:
                continue
            for msg in list(self._taken):
                with contextlib.suppress(*_NATS_AWAY):
                    await msg.in_progress()

    async def _commit(self) -> None:
        if not self._taken or self._nc is None:
            return
        for msg in self._taken:
            await msg.ack()
        # An ack is fire-and-forget; the flush's round trip means the server has them all.
        await self._nc.flush(timeout=int(max(self.timeout, 1)))
        self._taken = []

    async def _release(self, delay: float, one_by_one: bool) -> None:
        taken, self._taken = self._taken, []
        if one_by_one:
            self._one_by_one = max(self._one_by_one, len(taken))
        if not taken or self._nc is None:
            return
        for msg in taken:
            await msg.nak(delay=delay if delay > 0 else None)
        await self._nc.flush(timeout=int(max(self.timeout, 1)))

    async def _deliveries(self) -> int:
        return max((int(m.metadata.num_delivered) for m in self._taken), default=0)

    async def _pending(self) -> int:
        if self._sub is None:
            assert self._js is not None
            stream = await self._js.stream_info(self.stream)
            return int(stream.state.messages)
        consumer = await self._sub.consumer_info()
        return int(consumer.num_pending or 0)

    async def _waiting(self) -> int:
        assert self._js is not None
        if self.durable is None:
            return 0
        try:
            consumer = await self._js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            return 0
        return int(consumer.num_waiting or 0)

    async def _delete(self) -> None:
        assert self._js is not None
        await self._js.delete_stream(self.stream)
        self._sub = None

    async def _close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        taken, self._taken = self._taken, []
        if self._nc is None or self._nc.is_closed:
            return
        if self._nc.is_connected:
            # Uncommitted work goes straight back to the partition's next worker rather
            # than waiting out ack_wait.
            for msg in taken:
                await msg.nak()
            await self._nc.flush()
        await self._nc.close()


def _unheard(result: object) -> bool:
    """Whether a publish's result says no stream answered it (so it was not stored)."""
    return isinstance(result, NoStreamResponseError)


def _message_id(event: Event) -> dict[str, str] | None:
    """A batch's identity for JetStream's duplicate window: its device and sequence numbers.

    A reading is one (device, seq); a batch sent again after its sender heard nothing (an
    HTTP 503 whose publish did land, say) carries the same identity, so the server keeps
    one copy and workers do not run detectors over it twice.
    """
    if not isinstance(event, ReadingBatch) or not len(event):
        return None
    seq = event.seq
    key = f"{event.stream}/{event.device_ids[0]}/{int(seq[0])}-{int(seq[-1])}/{len(event)}"
    if len(set(event.device_ids)) > 1:
        key += f"/{zlib.crc32('|'.join(event.device_ids).encode()):08x}"
    return {"Nats-Msg-Id": key}


def _overlap(a: str, b: str) -> bool:
    """Whether two NATS subject filters can match one subject (``*`` one token, ``>`` the rest)."""
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        if x == ">" or y == ">":
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(left) == len(right)


def _idle(consumer: ConsumerInfo) -> bool:
    """Whether a consumer holds no unacknowledged event and no worker waits on it."""
    return not consumer.num_ack_pending and not consumer.num_waiting


def measure_throughput(
    url: str,
    *,
    events: int = 200,
    readings_per_event: int = 500,
    stream: str = "CIVICGUARD_BENCH",
) -> dict[str, float]:
    """Publish and consume batches through NATS; return events/s and readings/s for each side.

    Uses (and deletes at the end) a stream of its own, so it can run against a live server.
    """
    batch = _bench_batch(readings_per_event)
    prefix = f"civicguard.bench.{stream.lower()}"
    bench_log = NatsEventLog(url, stream, "bench", subject_prefix=prefix)
    try:
        chunk = 50
        started = time.perf_counter()
        # Each event its own sequence numbers: the server keeps one copy of a batch sent twice.
        batches = [
            dataclasses.replace(batch, seq=batch.seq + i * readings_per_event)
            for i in range(events)
        ]
        for first in range(0, events, chunk):
            bench_log.publish(batches[first : first + chunk])
        published = time.perf_counter() - started
        started = time.perf_counter()
        got = 0
        while got < events:
            n = len(bench_log.consume(256, 1.0))
            if n == 0:
                break
            bench_log.commit()
            got += n
        consumed = time.perf_counter() - started
    finally:
        bench_log.delete()
        bench_log.close()
    return {
        "events": float(events),
        "readings_per_event": float(readings_per_event),
        "publish_events_per_s": events / published,
        "publish_readings_per_s": events * readings_per_event / published,
        "consume_events_per_s": got / consumed,
        "consume_readings_per_s": got * readings_per_event / consumed,
    }


def _bench_batch(n: int) -> ReadingBatch:
    from civicguard.ingest.model import Transport

    rng = np.random.default_rng(7)
    now = time.time()
    return ReadingBatch(
        stream="power.substation",
        fields=("voltage", "frequency", "load"),
        device_ids=tuple(f"substation-{i % 40:03d}" for i in range(n)),
        seq=np.arange(n, dtype=np.int64),
        ts=np.full(n, now),
        received_at=np.full(n, now),
        values=rng.normal(11.0, 0.2, size=(n, 3)),
        text={},
        cells=("8a4983a6c69ffff",) * n,
        transport=Transport.HTTP,
    )


if __name__ == "__main__":  # pragma: no cover - a figure printer, run by hand
    import sys

    figures = measure_throughput(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222")
    for name, value in figures.items():
        print(f"{name:>24}: {value:,.0f}")

"""The NATS JetStream event log: durable, shared by many worker processes.

Ingest processes publish protected batches to a JetStream stream and wait for the
server's acknowledgements, so an accepted reading is on disk before the sender hears
"accepted". Workers pull from one durable consumer: each message goes to one worker,
and a message a worker took but never committed goes to another after ``ack_wait``.

nats-py is asyncio-only while the platform's ports are synchronous, so each log runs
its own event loop in a private thread and the public methods hand coroutines to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import nats
import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError

from civicguard.bus.codec import decode, encode
from civicguard.bus.port import Event
from civicguard.ingest.model import ReadingBatch

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a refused creation of the stream is retried (a restarting server restores it).
STREAM_SETTLE_S = 3.0
#: Extra seconds a caller waits beyond a call's own timeout before giving up on the loop.
_GRACE = 10.0
#: Seconds to wait for events already in the stream once a consume has its first one.
_READY = 0.01
#: A publish that no stream answered ("no responders": it was not stored) is sent again this
#: many times, this many seconds apart. A stream that was just created, or whose server has
#: just restarted, can take a moment to listen on its subjects.
_NO_STREAM_RETRIES = 3
_NO_STREAM_PAUSE = 0.25


class NatsEventLog:
    """An :class:`~civicguard.bus.port.EventLog` over a NATS JetStream stream.

    The stream (file storage, work-queue retention: a message is deleted once a worker
    acknowledges it, so protected data does not linger in the log) is created if missing.
    Events go to ``{subject_prefix}.{p}`` where ``p`` is a partition chosen from the
    stream name of the readings, so one city stream's batches stay in order within one
    partition. A log built with ``partition=None`` consumes every partition through the
    durable consumer ``durable``; with ``partition=i`` it consumes only partition ``i``
    through ``{durable}-{i}`` (one worker per partition keeps detector state whole).
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
        ack_wait: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        if partition is not None and not 0 <= partition < partitions:
            raise ValueError(f"partition {partition} is not in 0..{partitions - 1}")
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.partitions = partitions
        self.partition = partition
        self.durable = durable if partition is None else f"{durable}-{partition}"
        self.ack_wait = ack_wait
        self.timeout = timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        # Touched only on the loop's thread: messages consumed and not yet committed.
        self._taken: list[Msg] = []
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
        """Append ``events`` and return once JetStream has acknowledged every one."""
        if not events:
            return
        frames = [frame for event in events for frame in self._frames(event)]
        self._call(self._publish(frames), self.timeout)

    def consume(self, max_events: int, timeout: float) -> list[Event]:
        """Up to ``max_events`` events for this durable consumer; waits up to ``timeout`` s."""
        if self._closed or max_events < 1:
            return []
        # nats-py refuses a zero timeout; a millisecond still drains what is ready.
        wait = max(timeout, 0.001)
        msgs = self._call(self._consume(max_events, wait), wait)
        events: list[Event] = []
        for msg in msgs:
            try:
                events.append(decode(msg.data))
            except (ValueError, KeyError, TypeError):
                # Redelivering an event nobody can read would block the log forever.
                log.exception("dropping undecodable event %s", msg.metadata.sequence)
                self._call(self._terminate(msg), self.timeout)
        return events

    def commit(self) -> None:
        """Acknowledge every event ``consume`` returned so far: none will be redelivered."""
        if not self._closed:
            self._call(self._commit(), self.timeout)

    def release(self) -> None:  # stub for the EventLog port; the NATS branch implements it
        raise NotImplementedError("NatsEventLog.release is implemented on the NATS branch")

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
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout + _GRACE)
        except FutureTimeout:
            future.cancel()
            waited = timeout + _GRACE
            raise TimeoutError(f"NATS at {self.url} did not answer in {waited:.0f} s") from None

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

    def _frames(self, event: Event) -> Iterator[tuple[str, bytes]]:
        """``(subject, payload)`` for the event, halving batches larger than the server allows."""
        data = encode(event)
        limit = self._nc.max_payload if self._nc is not None else len(data)
        if len(data) > limit and isinstance(event, ReadingBatch) and len(event) > 1:
            half = len(event) // 2
            yield from self._frames(event.take(np.arange(half, dtype=np.intp)))
            yield from self._frames(event.take(np.arange(half, len(event), dtype=np.intp)))
            return
        yield self._subject(event), data

    async def _connect(self) -> None:
        self._nc = await nats.connect(
            self.url,
            name=f"civicguard-{self.durable}",
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

    async def _publish(self, frames: list[tuple[str, bytes]]) -> None:
        assert self._js is not None
        # Send everything first and wait for the acks together: one round trip per call,
        # not per event, and the order of sending is the order in the stream.
        for attempt in range(_NO_STREAM_RETRIES + 1):
            acks = [await self._js.publish_async(subject, data) for subject, data in frames]
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
            assert self._js is not None
            subject = (
                f"{self.subject_prefix}.>"
                if self.partition is None
                else f"{self.subject_prefix}.{self.partition}"
            )
            self._sub = await self._js.pull_subscribe(
                subject,
                durable=self.durable,
                stream=self.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait,
                    max_ack_pending=-1,
                ),
            )
        return self._sub

    async def _consume(self, max_events: int, timeout: float) -> list[Msg]:
        sub = await self._subscription()
        # Wait for one event only: JetStream fills the oldest waiting pull request up to its
        # batch size, so a lingering request for many would let one idle worker absorb a
        # whole burst while the others wait. What is already there comes in one go after.
        try:
            msgs = await sub.fetch(batch=1, timeout=timeout)
        except TimeoutError:  # nats' TimeoutError is an asyncio.TimeoutError: nothing arrived
            return []
        if max_events > 1:
            with contextlib.suppress(TimeoutError):
                msgs += await sub.fetch(batch=max_events - 1, timeout=_READY)
        self._taken.extend(msgs)
        return msgs

    async def _terminate(self, msg: Msg) -> None:
        self._taken.remove(msg)
        await msg.term()

    async def _commit(self) -> None:
        taken, self._taken = self._taken, []
        if not taken or self._nc is None:
            return
        for msg in taken:
            await msg.ack()
        # An ack is fire-and-forget; the flush's round trip means the server has them all.
        await self._nc.flush(timeout=int(max(self.timeout, 1)))

    async def _pending(self) -> int:
        if self._sub is None:
            assert self._js is not None
            stream = await self._js.stream_info(self.stream)
            return int(stream.state.messages)
        consumer = await self._sub.consumer_info()
        return int(consumer.num_pending or 0)

    async def _waiting(self) -> int:
        assert self._js is not None
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
        taken, self._taken = self._taken, []
        if self._nc is None or self._nc.is_closed:
            return
        if self._nc.is_connected:
            # Uncommitted work goes straight back to the other workers rather than
            # waiting out ack_wait.
            for msg in taken:
                await msg.nak()
            await self._nc.flush()
        await self._nc.close()


def _unheard(result: object) -> bool:
    """Whether a publish's result says no stream answered it (so it was not stored)."""
    return isinstance(result, NoStreamResponseError)


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
        for first in range(0, events, chunk):
            bench_log.publish([batch] * min(chunk, events - first))
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

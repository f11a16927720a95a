"""``civicguard worker --partition i``: one process consuming one partition of the NATS log.

At city scale ``serve`` processes publish protected batches to NATS JetStream, partitioned
by device; each partition has one durable consumer and one worker, which stores its
events, runs the detectors over them and files the alerts. A device's detector state so
lives in one process.

What a worker acknowledges is stored. A step that fails because the database or NATS is
away hands its events back, and the worker waits a second before it takes them again (so a
database that is away is tried about once a second, not as fast as the worker can fail);
a step that fails for any other reason is taken apart event by event, and an event that
still fails alone after :data:`MAX_DELIVERIES` deliveries goes to the dead letters with its
reason and content, so one bad event never blocks its partition.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import psycopg
from sqlalchemy import exc as sa_exc

from civicguard.bus.codec import encode
from civicguard.bus.nats import NatsEventLog
from civicguard.bus.port import Event, EventLogUnavailable
from civicguard.ingest.model import ReadingBatch, Reason, Rejection
from civicguard.pipeline import Processor
from civicguard.platform import Platform, make_event_log
from civicguard.settings import Settings
from civicguard.store.repositories import DeadLetterRepository

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between reloads of the device registry, so devices provisioned by the API
#: process after this worker started are placed in their districts.
DEVICE_REFRESH_EVERY = 30.0

#: Seconds a worker waits after NATS or the database was away before it tries again.
RETRY_AFTER = 1.0

#: Deliveries after which an event that fails alone, for a reason other than the database
#: or NATS being away, is dead-lettered instead of being tried again.
MAX_DELIVERIES = 3

#: Events handled in one step at most.
MAX_EVENTS = 256


class PartitionError(ValueError):
    """A worker was started without a valid partition for the configured partition count."""


def worker_partition(settings: Settings, partition: int | None) -> int:
    """The partition a worker consumes: ``partition``, or 0 when the log has only one."""
    n = settings.nats_partitions
    if partition is None:
        if n == 1:
            return 0
        raise PartitionError(
            f"CIVICGUARD_NATS_PARTITIONS is {n}: start one worker per partition, "
            f"`civicguard worker --partition i` for each i in 0..{n - 1}"
        )
    if not 0 <= partition < n:
        raise PartitionError(
            f"--partition {partition} is not in 0..{n - 1} (CIVICGUARD_NATS_PARTITIONS is {n})"
        )
    return partition


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database or the event log is away (so: wait and try again)."""
    away = (
        EventLogUnavailable,
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.DisconnectionError,
        sa_exc.TimeoutError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
        ConnectionError,
        TimeoutError,
    )
    if isinstance(exc, away):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def describe(exc: BaseException) -> str:
    """The kind of a failure, without its message (a database error may quote a value)."""
    if isinstance(exc, EventLogUnavailable):
        return str(exc)  # our own words: where NATS is and what it did
    name = type(exc).__name__
    orig = getattr(exc, "orig", None)
    return f"{name} ({type(orig).__name__})" if orig is not None else name


class PartitionWorker:
    """Consumes one partition: store and detect, commit; hand back or dead-letter on failure."""

    def __init__(
        self,
        processor: Processor,
        event_log: NatsEventLog,
        dead_letters: DeadLetterRepository,
        *,
        max_deliveries: int = MAX_DELIVERIES,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self.processor = processor
        self.log = event_log
        self.dead_letters = dead_letters
        self.max_deliveries = max_deliveries
        self.retry_after = retry_after

    def run(self, stop: threading.Event, tick_every: float = 0.5) -> None:
        """Consume until ``stop`` is set, ticking detectors every ``tick_every`` seconds."""
        next_tick = time.monotonic() + tick_every
        while not stop.is_set():
            try:
                self.step()
                if time.monotonic() >= next_tick:
                    self.processor.tick()
                    next_tick = time.monotonic() + tick_every
            except Exception as exc:
                if unavailable(exc):
                    log.warning(
                        "partition %s: %s; trying again in %.0f s",
                        self.log.partition,
                        describe(exc),
                        self.retry_after,
                    )
                else:
                    log.error(
                        "partition %s: step failed (%s); trying again in %.0f s",
                        self.log.partition,
                        describe(exc),
                        self.retry_after,
                    )
                self._hand_back()
                stop.wait(self.retry_after)

    def step(self) -> int:
        """Handle what the partition has (waiting a moment for it); return how many events."""
        events = self.log.consume(MAX_EVENTS, 0.2)
        if not events:
            return 0
        try:
            self.processor.handle(events)
        except Exception as exc:
            if unavailable(exc):
                raise
            self._unprocessable(events, exc)
            return len(events)
        self.log.commit()
        return len(events)

    def _unprocessable(self, events: list[Event], exc: Exception) -> None:
        """A step failed for a reason of its own: find the event, retry it, then dead-letter it."""
        if len(events) > 1:
            log.warning(
                "partition %s: a step of %d events failed (%s); handling them one by one",
                self.log.partition,
                len(events),
                describe(exc),
            )
            self.log.release(delay=0, one_by_one=True)
            return
        deliveries = self.log.deliveries()
        if deliveries < self.max_deliveries:
            log.warning(
                "partition %s: an event failed on delivery %d of %d (%s); it comes again",
                self.log.partition,
                deliveries,
                self.max_deliveries,
                describe(exc),
            )
            self.log.release(one_by_one=True)
            return
        letter = dead_letter(events[0], exc, deliveries, self.log.partition)
        self.dead_letters.write([letter])
        self.log.commit()
        log.error("partition %s: %s", self.log.partition, letter.detail)

    def _hand_back(self) -> None:
        try:
            self.log.release()
        except Exception as exc:  # NATS is away too: the events come back after ack_wait
            log.warning(
                "partition %s: could not hand events back (%s)", self.log.partition, describe(exc)
            )


def dead_letter(
    event: Event, exc: BaseException, deliveries: int, partition: int | None
) -> Rejection:
    """A dead letter holding ``event`` whole (it is protected already) and why it failed."""
    stream: str | None = event.stream
    if isinstance(event, ReadingBatch):
        devices = set(event.device_ids)
        device = next(iter(devices)) if len(devices) == 1 else None
        what = f"a batch of {len(event)} readings of {event.stream}"
        received = float(event.received_at.min())
        seqs = f"{event.seq.min()}-{event.seq.max()}" if len(event) else "-"
        identity = f"batch:{event.stream}:{','.join(sorted(devices))}:{seqs}:{received!r}"
    else:
        device, what = event.device_id, f"a {event.reason.value} refusal"
        received = event.received_at
        identity = f"refusal:{event.id}"
    detail = (
        f"{what} failed in {deliveries} deliveries, the last with {describe(exc)}; "
        f"dead-lettered so that partition {partition} carries on"
    )
    return Rejection(
        # The same event dead-lettered again (its worker died before acknowledging it) is the
        # same dead letter: the store keeps one row per id.
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"civicguard:poison:{identity}").hex,
        reason=Reason.UNPROCESSABLE_EVENT,
        detail=detail,
        transport=event.transport,
        received_at=received,
        device_id=device[:64] if device else None,
        stream=stream[:64] if stream else None,
        payload=encode(event),
    )


def run_worker(
    settings: Settings,
    durable: str = "workers",
    stop: threading.Event | None = None,
    partition: int | None = None,
) -> None:
    """Consume one partition until ``stop`` is set, or Ctrl-C / SIGTERM in the main thread.

    Raises :class:`PartitionError` for a partition the settings do not have, and
    :class:`~civicguard.bus.nats.ConsumerConflictError` when the stream holds a consumer of
    an older layout that takes this partition's events.
    """
    if settings.event_log != "nats":
        settings = settings.model_copy(update={"event_log": "nats"})
    partition = worker_partition(settings, partition)
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    try:
        event_log = _when_up(
            lambda: _open_log(settings, durable, partition), stop, "NATS", settings.nats_url
        )
        if event_log is None:
            return
        try:
            platform = _when_up(
                lambda: Platform.build(settings, log=event_log), stop, "the database", ""
            )
        except BaseException:
            event_log.close()
            raise
        if platform is None:
            event_log.close()
            return
        _consume(platform, event_log, stop)
    finally:
        restore()


def _open_log(settings: Settings, durable: str, partition: int) -> NatsEventLog:
    event_log = make_event_log(settings, durable_name=durable, partition=partition)
    assert isinstance(event_log, NatsEventLog)
    try:
        event_log.start_consuming()
    except BaseException:
        event_log.close()
        raise
    return event_log


def _consume(platform: Platform, event_log: NatsEventLog, stop: threading.Event) -> None:
    refresher = threading.Thread(
        target=_refresh_devices, args=(platform, stop), name="civicguard-devices", daemon=True
    )
    worker = PartitionWorker(platform.processor, event_log, platform.store.dead_letters)
    log.info(
        "worker consuming partition %s of %s through %s on %s",
        event_log.partition,
        event_log.stream,
        event_log.durable,
        event_log.url,
    )
    try:
        refresher.start()
        worker.run(stop)
    finally:
        stop.set()
        refresher.join(timeout=5)
        platform.close()
        log.info("worker of partition %s stopped", event_log.partition)


def _when_up(open_: Callable[[], T], stop: threading.Event, what: str, where: str) -> T | None:
    """``open_()`` once ``what`` answers; None if ``stop`` is set first."""
    while not stop.is_set():
        try:
            return open_()
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning(
                "%s %s is away (%s); trying again in %.0f s",
                what,
                where,
                describe(exc),
                RETRY_AFTER,
            )
            stop.wait(RETRY_AFTER)
    return None


def _refresh_devices(platform: Platform, stop: threading.Event) -> None:
    while not stop.wait(DEVICE_REFRESH_EVERY):
        try:
            platform.registry.reload()
        except Exception:  # a failed reload must not stop the consuming
            log.warning("could not reload the device registry", exc_info=True)


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set ``stop``; return what puts the old handlers back.

    Only the main thread may install handlers, so elsewhere (tests, embedding) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

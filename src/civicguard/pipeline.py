"""The consumer side of the flow: event log -> store -> detectors -> incidents -> live feed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from civicguard.bus.port import Event, EventLog
from civicguard.clock import Clock
from civicguard.detect.base import Detector
from civicguard.detect.model import Alert
from civicguard.ingest.model import ReadingBatch, Rejection
from civicguard.metrics import METRICS
from civicguard.respond.feed import LiveFeed
from civicguard.respond.incidents import IncidentDesk
from civicguard.store.repositories import Store
from civicguard.store.writer import BackgroundWriter

log = logging.getLogger(__name__)

#: Seconds the consumer loop waits after a failed step before trying again.
RETRY_AFTER_S = 0.5


def alert_event(alert: Alert) -> dict[str, object]:
    """An alert as the live feed carries it."""
    return {"type": "alert", **alert.as_dict()}


def _run(
    detector: Detector, step: str, call: Callable[..., list[Alert]], *args: Any
) -> list[Alert]:
    """One detector step; a failing detector is logged and counted, and the others carry on.

    Storage happens before detection, so a detector bug can cost alerts from that detector,
    never readings.
    """
    try:
        return call(*args)
    except Exception:
        log.exception("detector %s failed in %s; the pipeline carries on", detector.name, step)
        METRICS.detector_failures.labels(detector=detector.name).inc()
        return []


class Processor:
    """Consumes the event log in batches and drives storage, detection and response."""

    def __init__(
        self,
        log: EventLog,
        store: Store,
        detectors: Sequence[Detector],
        desk: IncidentDesk,
        feed: LiveFeed,
        clock: Clock,
        *,
        store_readings: bool = True,
    ) -> None:
        self.log = log
        self.store = store
        self.detectors = list(detectors)
        self.desk = desk
        self.feed = feed
        self.clock = clock
        self.store_readings = store_readings
        #: Seconds from a reading's arrival to its alert, for every alert raised (bench reads it).
        self.latencies: list[float] = []
        #: When set, readings are stored in its thread while detectors run (see run_once).
        self.writer: BackgroundWriter | None = None
        self._lock = threading.Lock()

    def handle(self, events: Sequence[Event]) -> list[Alert]:
        """Store, detect and file alerts for ``events``; return the alerts raised."""
        batches = [e for e in events if isinstance(e, ReadingBatch)]
        rejections = [e for e in events if isinstance(e, Rejection)]
        with self._lock:
            stored = batches if self.store_readings else []
            if self.writer is not None:
                self.writer.write(stored, rejections)
            else:
                if stored:
                    METRICS.stored.inc(self.store.readings.write(stored))
                if rejections:
                    self.store.dead_letters.write(rejections)
            now = self.clock.now()
            raised: list[Alert] = []
            for batch in batches:
                found: list[Alert] = []
                for detector in self.detectors:
                    found.extend(_run(detector, "process", detector.process, batch, now))
                if found:
                    arrived = float(batch.received_at.min())
                    done = time.time()
                    for _ in found:
                        self.latencies.append(done - arrived)
                        METRICS.alert_latency.observe(done - arrived)
                    raised.extend(found)
            for rejection in rejections:
                for detector in self.detectors:
                    raised.extend(
                        _run(detector, "on_rejection", detector.on_rejection, rejection, now)
                    )
            return self._file(raised)

    def tick(self) -> list[Alert]:
        """Let detectors of absence look at the clock."""
        with self._lock:
            now = self.clock.now()
            raised: list[Alert] = []
            for detector in self.detectors:
                raised.extend(_run(detector, "tick", detector.tick, now))
            return self._file(raised)

    def _file(self, alerts: list[Alert]) -> list[Alert]:
        if not alerts:
            return []
        filed = self.desk.file(alerts)
        for alert in filed:
            METRICS.alerts.labels(detector=alert.detector, severity=alert.severity.value).inc()
            self.feed.publish(alert_event(alert))
        return filed

    def run_once(self, max_events: int = 256, timeout: float = 0.2) -> int:
        """Handle what the log has (waiting up to ``timeout``); return how many events.

        The log is acknowledged only once everything taken is stored. A step that fails hands
        what it took back to the log before raising, so that a later step's commit cannot
        acknowledge it: it is delivered again and stored then (readings and dead letters are
        stored once however often they come).
        """
        events = self.log.consume(max_events, timeout)
        if not events:
            return 0
        try:
            self.handle(events)
            if self.writer is not None:
                self.writer.flush()  # acknowledge only what is stored
            self.log.commit()
        except BaseException:
            self._release()
            raise
        return len(events)

    def _release(self) -> None:
        try:
            self.log.release()
        except Exception:
            # A log that cannot even hand back keeps its events unacknowledged: a durable log
            # delivers them again after a restart.
            log.exception("could not hand the failed step's events back to the event log")

    def run(self, stop: threading.Event, tick_every: float = 0.5, drain_s: float = 0.0) -> None:
        """Consume until ``stop`` is set, ticking detectors every ``tick_every`` seconds.

        Then, for up to ``drain_s`` seconds, handle what the log still holds (shutdown drains;
        a durable log keeps the rest for the next start).
        """
        next_tick = time.monotonic() + tick_every
        while not stop.is_set():
            try:
                self.run_once(timeout=min(0.2, tick_every))
                if time.monotonic() >= next_tick:
                    self.tick()
                    next_tick = time.monotonic() + tick_every
            except Exception:
                # A database or event log that is briefly away must not end the pipeline;
                # the failed step's events went back to the log and come again.
                log.exception("pipeline step failed; retrying")
                stop.wait(RETRY_AFTER_S)
        if drain_s > 0:
            self.drain(drain_s)

    def drain(self, within: float) -> bool:
        """Handle what the log holds now, for up to ``within`` s; True if it was emptied."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if self.run_once(timeout=0.0) == 0:
                    return True
            except Exception:
                log.exception("pipeline step failed while draining; retrying")
                time.sleep(min(RETRY_AFTER_S, max(0.0, deadline - time.monotonic())))
        log.warning("shutdown drain stopped after %.0f s; the event log keeps the rest", within)
        return False

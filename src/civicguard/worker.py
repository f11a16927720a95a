"""``civicguard worker``: one process consuming the JetStream event log into store and detectors.

At city scale HTTP and MQTT ingest processes publish protected batches to NATS JetStream;
any number of workers share one durable consumer, so each batch is stored, run through
the detectors and turned into alerts by exactly one of them.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from civicguard.platform import Platform, make_event_log
from civicguard.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between reloads of the device registry, so devices provisioned by the API
#: process after this worker started are placed in their districts.
DEVICE_REFRESH_EVERY = 30.0

#: Seconds a worker waits after a failure (NATS or the database unreachable) before resuming.
RETRY_AFTER = 2.0


def run_worker(
    settings: Settings,
    durable: str = "workers",
    stop: threading.Event | None = None,
    partition: int | None = None,
) -> None:
    """Consume the NATS event log until ``stop`` is set, or Ctrl-C / SIGTERM in the main thread."""
    if settings.event_log != "nats":
        settings = settings.model_copy(update={"event_log": "nats"})
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    event_log = make_event_log(settings, durable_name=durable, partition=partition)
    platform = Platform.build(settings, log=event_log)
    refresher = threading.Thread(
        target=_refresh_devices, args=(platform, stop), name="civicguard-devices", daemon=True
    )
    log.info("worker %r consuming %s on %s", durable, settings.nats_stream, settings.nats_url)
    try:
        refresher.start()
        while not stop.is_set():
            try:
                platform.processor.run(stop)
            except Exception:
                # Typically NATS or the database going away for a while: what this worker
                # took and did not commit is redelivered, so trying again loses nothing.
                log.exception("worker %r failed; retrying in %.0f s", durable, RETRY_AFTER)
                stop.wait(RETRY_AFTER)
    finally:
        stop.set()
        refresher.join(timeout=5)
        platform.close()
        restore()
        log.info("worker %r stopped", durable)


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

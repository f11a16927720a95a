"""Assembles the platform from settings: one place that picks adapters and wires the flow."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicguard.bus.local import EVENTS_FILE, LocalEventLog
from civicguard.bus.memory import MemoryEventLog
from civicguard.bus.port import EventLog
from civicguard.catalog.loader import demo_catalog, load_catalog
from civicguard.catalog.model import Catalog
from civicguard.citizens import Citizens
from civicguard.citizens.retention import citizen_targets
from civicguard.clock import Clock, SystemClock
from civicguard.detect.registry import default_detectors
from civicguard.detect.water.persist import load_model
from civicguard.ingest.decode import Decoder
from civicguard.ingest.registry import DeviceRegistry
from civicguard.ingest.sequence import FINGERPRINT_KEY, SequenceGuard
from civicguard.ingest.service import IngestService
from civicguard.pipeline import Processor
from civicguard.privacy.gateway import PrivacyGateway
from civicguard.privacy.keys import FileKeyStore, KeyStore, Sealer
from civicguard.privacy.retention import RetentionSweeper, default_targets
from civicguard.respond.feed import LiveFeed
from civicguard.respond.incidents import IncidentDesk
from civicguard.settings import Settings
from civicguard.store.database import make_engine, sqlite_url
from civicguard.store.lifecycle import (
    KeyEventRepository,
    RetentionRepository,
    RetentionRunRepository,
)
from civicguard.store.migrate import upgrade
from civicguard.store.repositories import Store
from civicguard.store.writer import BackgroundWriter

#: Seconds a stopping platform lets its processor work through what the event log holds; a
#: durable log keeps whatever is left for the next start.
SHUTDOWN_DRAIN_S = 10.0


def make_event_log(
    settings: Settings, *, durable_name: str = "workers", partition: int | None = None
) -> EventLog:
    """The event log adapter the settings ask for (``partition``: consume only that one)."""
    if settings.event_log == "nats":
        from civicguard.bus.nats import NatsEventLog

        return NatsEventLog(
            settings.nats_url,
            settings.nats_stream,
            durable=durable_name,
            partitions=settings.nats_partitions,
            partition=partition,
        )
    if settings.event_log == "memory":
        return MemoryEventLog()
    return LocalEventLog(Path(settings.data_dir) / EVENTS_FILE)


@dataclass
class Platform:
    """Every service of a running civicguard, built once from settings."""

    settings: Settings
    catalog: Catalog
    clock: Clock
    keys: KeyStore
    store: Store
    registry: DeviceRegistry
    log: EventLog
    ingest: IngestService
    processor: Processor
    desk: IncidentDesk
    feed: LiveFeed
    #: Consent registry and its ingest gate, subject vault and rights, citizen reports.
    citizens: Citizens
    #: The retention sweeper; other packages register their retention targets on it.
    retention: RetentionSweeper
    #: The street network (``civicguard.respond.streets.StreetNetwork``) when one is loaded.
    streets: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        keys: KeyStore | None = None,
        log: EventLog | None = None,
    ) -> Platform:
        """Build the platform; creates the data directory and brings the schema up to date."""
        clock = clock or SystemClock()
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        catalog = load_catalog(settings.catalog) if settings.catalog else demo_catalog()
        keys = keys or FileKeyStore.in_dir(data_dir)
        engine = make_engine(settings.database_url or sqlite_url(data_dir))
        upgrade(engine)
        store = Store(engine)
        registry = DeviceRegistry(store.devices, Sealer(keys), catalog)
        log = log or make_event_log(settings)
        key_events = KeyEventRepository(engine)
        gateway = PrivacyGateway(catalog, keys, key_events)
        retention = RetentionSweeper(
            default_targets(
                catalog,
                RetentionRepository(engine),
                keys,
                key_events,
                on_destroyed=gateway.pseudonymiser.forget,
            ),
            clock,
            RetentionRunRepository(engine),
        )
        guard = SequenceGuard(
            window=settings.replay_window,
            span=catalog.limits.max_batch,
            recall=store.readings.recall,
            key=keys.get_or_create(FINGERPRINT_KEY),
        )
        citizens = Citizens.build(catalog, keys, engine, clock, keys_dir=data_dir / "keys")
        records = citizens.rights.records
        for target in citizen_targets(catalog.retention, records, keys, key_events):
            retention.register(target)
        ingest = IngestService(Decoder(catalog), gateway, guard, log, clock, consent=citizens.gate)
        desk = IncidentDesk(
            store.incidents,
            store.alerts,
            clock,
            district_of=lambda device_id: getattr(registry.get(device_id), "district", ""),
        )
        feed = LiveFeed()
        water_model = load_model(Path(settings.water_model)) if settings.water_model else None
        detectors = default_detectors(catalog, registry.get, water_model)
        processor = Processor(log, store, detectors, desk, feed, clock)
        return cls(
            settings=settings,
            catalog=catalog,
            clock=clock,
            keys=keys,
            store=store,
            registry=registry,
            log=log,
            ingest=ingest,
            processor=processor,
            desk=desk,
            feed=feed,
            citizens=citizens,
            retention=retention,
        )

    def start_processing(self) -> None:
        """Run the consumer loop in a background thread (embedded mode), storing in another."""
        self.processor.writer = BackgroundWriter(self.store)
        thread = threading.Thread(
            target=self.processor.run,
            args=(self._stop,),
            kwargs={"drain_s": SHUTDOWN_DRAIN_S},
            name="civicguard-processor",
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)

    def start_retention(self) -> None:
        """Sweep past-retention data now and every ``retention_interval`` seconds (0: never)."""
        if self.settings.retention_interval > 0:
            self._threads.append(self.retention.start(self._stop, self.settings.retention_interval))

    def close(self) -> None:
        """Stop background threads and release connections.

        The processor first works through what the log holds (up to ``SHUTDOWN_DRAIN_S``),
        acknowledging each step only once the writer has stored it; the writer then stores
        whatever is still queued before the log is closed.
        """
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=SHUTDOWN_DRAIN_S + 5)
        if self.processor.writer is not None:
            self.processor.writer.close()
        self.log.close()
        self.store.engine.dispose()

"""The retention sweeper: nothing outlives the retention its catalog entry declares.

The sweeper runs a list of retention targets, each a name and ``sweep(now) -> count``. The
built-in ones, in the order they run:

- ``readings``: a stream's readings older than its retention (by reading time);
- ``alerts``: alerts, with their evidence, older than their stream's retention (alerts of no
  catalog stream: the catalog's ``dead_letter_retention``);
- ``dead_letters``: refused messages after the shorter of their stream's retention and the
  catalog's ``dead_letter_retention`` (by arrival; no stream: ``dead_letter_retention``);
- ``alert_marks``: operators' verdicts on alerts (who marked, the note) after the catalog's
  ``retention.alert_marks``; they are tuning data and outlive the alert on purpose;
- ``incident_personal_fields``: an incident's note and the staff who acknowledged or resolved it
  are blanked once none of its alerts is left, i.e. once the longest retention among its alerts'
  streams has passed; the incident itself stays for statistics;
- ``pseudonym_keys``: a stream's pseudonym key for a period is destroyed once the stream's
  retention has passed since the period ended (:mod:`civicguard.privacy.pseudonyms`), and the
  destruction is recorded. Only keys named ``pseudonym/...`` are ever touched.

Other packages add theirs with :meth:`register` (:mod:`civicguard.citizens.retention`: consents,
receipts, subject requests, erased subjects, citizen reports, and the subject keys of subjects
with none of those left).
It runs on a schedule inside ``serve`` and ``demo`` and once as ``civicguard retention run``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from civicguard.catalog.model import Catalog
from civicguard.clock import Clock
from civicguard.metrics import METRICS
from civicguard.privacy.keys import KeyStore
from civicguard.privacy.pseudonyms import (
    PREFIX,
    KeyJournal,
    destruction_deadline,
    parse_key_name,
    pseudonymising_streams,
)
from civicguard.store.lifecycle import RetentionRepository, RetentionRunRepository

log = logging.getLogger(__name__)

DAY = 86_400.0


class RetentionTarget(Protocol):
    """Something holding data with a retention: it removes what is past it."""

    @property
    def name(self) -> str:
        """What the target holds, as the report names it."""
        ...

    def sweep(self, now: float) -> int:
        """Remove (or scrub) everything past its retention at ``now``; return how many."""
        ...


def retention_by_stream(catalog: Catalog) -> dict[str, float]:
    """Every stream's retention in seconds."""
    return {s.name: s.retention_days * DAY for s in catalog.streams}


@dataclass(frozen=True, slots=True)
class ReadingRetention:
    """Readings of each stream, by reading time."""

    catalog: Catalog
    repository: RetentionRepository
    name: str = "readings"

    def sweep(self, now: float) -> int:
        """Delete readings older than their stream's retention."""
        cutoffs = {s: now - r for s, r in retention_by_stream(self.catalog).items()}
        return self.repository.delete_readings(cutoffs)


@dataclass(frozen=True, slots=True)
class AlertRetention:
    """Alerts and their evidence, by the time of what they are about."""

    catalog: Catalog
    repository: RetentionRepository
    name: str = "alerts"

    def sweep(self, now: float) -> int:
        """Delete alerts older than their stream's retention."""
        cutoffs = {s: now - r for s, r in retention_by_stream(self.catalog).items()}
        return self.repository.delete_alerts(cutoffs, now - self.catalog.dead_letter_retention_s)


@dataclass(frozen=True, slots=True)
class DeadLetterRetention:
    """Refused messages, by arrival."""

    catalog: Catalog
    repository: RetentionRepository
    name: str = "dead_letters"

    def sweep(self, now: float) -> int:
        """Delete dead letters older than min(stream retention, dead-letter retention)."""
        limit = self.catalog.dead_letter_retention_s
        cutoffs = {s: now - min(r, limit) for s, r in retention_by_stream(self.catalog).items()}
        return self.repository.delete_dead_letters(cutoffs, now - limit)


@dataclass(frozen=True, slots=True)
class AlertMarkRetention:
    """Operators' verdicts on alerts (tuning data), by when they were given."""

    catalog: Catalog
    repository: RetentionRepository
    name: str = "alert_marks"

    def sweep(self, now: float) -> int:
        """Delete marks older than the catalog's ``retention.alert_marks``."""
        return self.repository.delete_alert_marks(now - self.catalog.retention.alert_marks_s)


@dataclass(frozen=True, slots=True)
class IncidentScrub:
    """Personal fields of incidents whose alerts have all passed retention."""

    repository: RetentionRepository
    name: str = "incident_personal_fields"

    def sweep(self, now: float) -> int:
        """Blank note, acknowledged_by and resolved_by of incidents with no alert left."""
        return self.repository.scrub_orphaned_incidents()


@dataclass(slots=True)
class PseudonymKeyRetention:
    """Pseudonym keys, destroyed once every reading they pseudonymised is past retention."""

    catalog: Catalog
    keys: KeyStore
    journal: KeyJournal
    #: Told the name of every destroyed key (the pseudonymiser drops its cached copy).
    on_destroyed: Callable[[str], None] | None = None
    name: str = "pseudonym_keys"

    def sweep(self, now: float) -> int:
        """Destroy pseudonym keys past their deadline and record each destruction."""
        retention = pseudonymising_streams(self.catalog)
        rotation = self.catalog.pseudonym_rotation_s
        destroyed = 0
        for name in self.keys.names():
            if not name.startswith(PREFIX):
                continue  # subject keys are the citizens' target's; signing and sealing
                # keys live on
            key = parse_key_name(name, rotation)
            if key is None:
                continue
            deadline = destruction_deadline(key, retention)
            if deadline > now:
                continue
            reason = (
                f"retention: {key.stream or 'all pseudonymising streams'}, period ended "
                f"{_iso(key.end)}, data past retention since {_iso(deadline)}"
            )
            if self.keys.destroy(name):
                destroyed += 1
            self.journal.record(name, "destroyed", now, reason)
            if self.on_destroyed is not None:
                self.on_destroyed(name)
        return destroyed

    def status(self) -> dict[str, int]:
        """How many pseudonym keys are alive and how many were destroyed."""
        alive = sum(1 for n in self.keys.names() if n.startswith(PREFIX))
        return {"alive": alive, "destroyed": len(self.journal.destroyed(PREFIX))}


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one sweep removed, per target; failed targets with their error."""

    at: float
    removed: dict[str, int]
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Everything removed in this sweep."""
        return sum(self.removed.values())

    def lines(self) -> list[str]:
        """The report as the command line prints it."""
        out = [f"retention sweep at {_iso(self.at)}"]
        out += [f"  {name}: {count} removed" for name, count in self.removed.items()]
        out += [f"  {name}: FAILED ({error})" for name, error in self.failed.items()]
        return out


class RetentionSweeper:
    """Runs every registered retention target, on demand or on a schedule."""

    def __init__(
        self,
        targets: Iterable[RetentionTarget],
        clock: Clock,
        runs: RetentionRunRepository | None = None,
    ) -> None:
        self.targets: list[RetentionTarget] = list(targets)
        self._clock = clock
        self._runs = runs
        self._lock = threading.Lock()

    def register(self, target: RetentionTarget) -> None:
        """Add a target; it runs after those already registered."""
        if any(t.name == target.name for t in self.targets):
            raise ValueError(f"a retention target called {target.name!r} is already registered")
        self.targets.append(target)

    def run(self) -> RetentionReport:
        """Sweep every target once; a failing target is reported and the others still run."""
        with self._lock:
            now = self._clock.now()
            removed: dict[str, int] = {}
            failed: dict[str, str] = {}
            for target in self.targets:
                try:
                    removed[target.name] = count = target.sweep(now)
                except Exception as exc:
                    log.exception("retention target %s failed; the others carry on", target.name)
                    failed[target.name] = f"{type(exc).__name__}: {exc}"[:200]
                    continue
                if count:
                    METRICS.retention_removed.labels(target=target.name).inc(count)
            if self._runs is not None:
                self._runs.record(now, removed.items())
            return RetentionReport(at=now, removed=removed, failed=failed)

    def start(self, stop: threading.Event, interval_s: float) -> threading.Thread:
        """Sweep now and then every ``interval_s`` seconds until ``stop`` is set."""
        if interval_s <= 0:
            raise ValueError(f"retention interval must be positive, got {interval_s}")

        def loop() -> None:
            while not stop.is_set():
                try:
                    self.run()
                except Exception:  # the record of the run failed; try again next time
                    log.exception("retention sweep failed")
                if stop.wait(interval_s):
                    return

        thread = threading.Thread(target=loop, name="civicguard-retention", daemon=True)
        thread.start()
        return thread


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def default_targets(
    catalog: Catalog,
    repository: RetentionRepository,
    keys: KeyStore,
    journal: KeyJournal,
    on_destroyed: Callable[[str], None] | None = None,
) -> list[RetentionTarget]:
    """The built-in targets in the order they must run (data before the keys that linked it)."""
    return [
        ReadingRetention(catalog, repository),
        AlertRetention(catalog, repository),
        DeadLetterRetention(catalog, repository),
        AlertMarkRetention(catalog, repository),
        IncidentScrub(repository),
        PseudonymKeyRetention(catalog, keys, journal, on_destroyed),
    ]

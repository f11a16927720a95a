"""A subject's key does not outlive the subject's data: retention retires it once nothing is left.

On SQLite and PostgreSQL, with a manual clock: the key ``subject/<handle>`` stays while any
consent, receipt, subject request or report of the subject remains, goes (recorded in
``key_events`` by name) once the last of them aged out, and a later grant starts a fresh key.
A grant arriving while the sweep runs never ends up sealed under a destroyed key.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from civicguard.catalog.loader import demo_catalog
from civicguard.citizens import RequestKind
from civicguard.citizens.reports import report_context
from civicguard.clock import ManualClock
from civicguard.platform import Platform
from civicguard.privacy.keys import FileKeyStore, MemoryKeyStore
from civicguard.privacy.retention import RetentionTarget
from civicguard.settings import Settings
from civicguard.store import schema
from tests.store.conftest import pg_database, store_url

from .conftest import APP_STREAM

__all__ = ["pg_database", "store_url"]  # fixtures: SQLite and the session's PostgreSQL

DAY = 86_400.0
CITIZEN = "cit-ana-0815"
#: Not consent-based, no scrubbing needed: what a resident's named report is filed under.
CATEGORY = "lighting"


class PausingKeys(MemoryKeyStore):
    """Keys in memory whose destruction of subject keys can be watched and held up."""

    def __init__(self) -> None:
        super().__init__()
        self.destroying = threading.Event()
        self.proceed = threading.Event()
        self.proceed.set()

    def destroy(self, name: str) -> bool:
        if name.startswith("subject/"):
            self.destroying.set()
            assert self.proceed.wait(timeout=60), "destroy held up for too long"
        return super().destroy(name)


@pytest.fixture
def live(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    """A platform on the SQLite file or the PostgreSQL database of ``store_url``."""
    settings = Settings(data_dir=tmp_path / "data", database_url=store_url)
    platform = Platform.build(settings, clock=clock, keys=PausingKeys())
    yield platform
    platform.close()


def handle(platform: Platform, citizen: str = CITIZEN) -> str:
    return platform.citizens.index.handle(citizen)


def key_of(platform: Platform, citizen: str = CITIZEN) -> bytes | None:
    return platform.keys.get(f"subject/{handle(platform, citizen)}")


def subject_events(platform: Platform) -> list[dict[str, Any]]:
    t = schema.key_events
    with platform.store.engine.connect() as conn:
        q = select(t).where(t.c.name.startswith("subject/"))
        return [dict(r) for r in conn.execute(q).mappings()]


def subject_row(platform: Platform, citizen: str = CITIZEN) -> dict[str, Any] | None:
    return platform.citizens.rights.records.subjects.get(handle(platform, citizen))


def sweep_keys(platform: Platform) -> int:
    """Run the whole sweep; return what ``subject_keys`` removed (no target may fail)."""
    report = platform.retention.run()
    assert report.failed == {}
    return report.removed["subject_keys"]


def subject_key_target(platform: Platform) -> RetentionTarget:
    (target,) = (t for t in platform.retention.targets if t.name == "subject_keys")
    return target


def test_the_key_goes_once_the_last_record_of_the_subject_aged_out(
    live: Platform, clock: ManualClock
) -> None:
    retention = live.catalog.retention
    citizens = live.citizens
    t0 = clock.now()
    citizens.consent.grant(CITIZEN, APP_STREAM)
    citizens.rights.request(CITIZEN, RequestKind.EXPORT, by="app")  # pending: never ages out...
    clock.advance(10 * DAY)
    citizens.consent.withdraw(CITIZEN, APP_STREAM)
    clock.advance(10 * DAY)
    done = citizens.rights.export(CITIZEN, by="staff:dpo")  # ...until done, at t0 + 20 days
    assert {i["kind"] for i in done["items"]} == {"consent", "consent_receipt", "subject_request"}
    key = key_of(live)
    assert key is not None
    assert subject_row(live) is not None

    # Each record's retention passes in turn; the key stays while any of them is left.
    clock.set(t0 + 10 * DAY + retention.consent_proof_s + 1)  # spans and both receipts go
    assert sweep_keys(live) == 0
    records = live.citizens.rights.records
    assert records.consents.of_subject(handle(live)) == []
    assert records.consents.receipts(handle(live)) == []
    assert key_of(live) == key
    clock.set(t0 + 20 * DAY + retention.subject_requests_s - 1)  # the request: a second left
    assert sweep_keys(live) == 0
    assert key_of(live) == key

    clock.set(t0 + 20 * DAY + retention.subject_requests_s + 1)
    assert sweep_keys(live) == 1
    assert records.requests.query(subject=handle(live)) == []
    assert key_of(live) is None
    assert subject_row(live) is None  # nor does the subjects table still say they were here
    (event,) = subject_events(live)
    assert event["name"] == f"subject/{handle(live)}"
    assert (event["event"], event["at"]) == ("destroyed", clock.now())
    assert event["reason"].startswith("retention: ")
    assert CITIZEN not in repr(event)
    assert sweep_keys(live) == 0

    # The record of the destruction has a proof period of its own, like an erasure's.
    clock.advance(retention.subject_requests_s - 1)
    assert live.retention.run().removed["erased_subjects"] == 0
    assert len(subject_events(live)) == 1
    clock.advance(2)
    assert live.retention.run().removed["erased_subjects"] == 1
    assert subject_events(live) == []


def _consent_in_force(platform: Platform) -> None:
    platform.citizens.consent.grant(CITIZEN, APP_STREAM)


def _pending_request(platform: Platform) -> None:
    platform.citizens.rights.request(CITIZEN, RequestKind.ERASURE, by="app")


def _named_report(platform: Platform) -> None:
    platform.citizens.reports.file("The lamp at the corner is out", CATEGORY, citizen=CITIZEN)


def _done_request(platform: Platform) -> None:
    rights = platform.citizens.rights
    request = rights.request(CITIZEN, RequestKind.EXPORT, by="app")  # the id sealed...
    rights.fulfil(request["id"], by="staff:dpo")  # ...and dropped once carried out


def _withdrawn_consent(platform: Platform) -> None:
    platform.citizens.consent.grant(CITIZEN, APP_STREAM)
    platform.citizens.consent.withdraw(CITIZEN, APP_STREAM)


@pytest.mark.parametrize(
    ("leave", "lives"),
    [
        (_consent_in_force, None),
        (_pending_request, None),
        (_named_report, "citizen_reports_s"),
        (_done_request, "subject_requests_s"),
        (_withdrawn_consent, "consent_proof_s"),
    ],
    ids=["consent_in_force", "pending_request", "report", "done_request", "withdrawn_consent"],
)
def test_the_key_stays_while_any_record_remains(
    live: Platform,
    clock: ManualClock,
    leave: Callable[[Platform], None],
    lives: str | None,
) -> None:
    live.citizens.reports.scrub = str  # the scrubber is tested elsewhere
    leave(live)
    key = key_of(live)
    assert key is not None
    if lives is None:  # in force or pending: kept however long it takes
        clock.advance(10 * 365 * DAY)
        assert sweep_keys(live) == 0
        assert key_of(live) == key
        assert subject_row(live) is not None
        return
    lifetime = getattr(live.catalog.retention, lives)
    clock.advance(lifetime - 1)
    assert sweep_keys(live) == 0
    assert key_of(live) == key
    clock.advance(2)
    assert sweep_keys(live) == 1
    assert key_of(live) is None


def test_other_keys_and_other_subjects_are_left_alone(live: Platform, clock: ManualClock) -> None:
    live.citizens.reports.scrub = str
    live.citizens.reports.file("Pothole on the avenue", CATEGORY, citizen=CITIZEN)
    live.citizens.consent.grant("cit-staying", APP_STREAM)
    platform_keys = {n for n in live.keys.names() if not n.startswith("subject/")}
    assert "sign/consent-receipts" in platform_keys
    clock.advance(live.catalog.retention.citizen_reports_s + 1)
    assert sweep_keys(live) == 1
    assert key_of(live) is None
    assert key_of(live, "cit-staying") is not None
    assert {n for n in live.keys.names() if not n.startswith("subject/")} == platform_keys


def test_a_grant_after_the_destruction_starts_a_fresh_key(
    live: Platform, clock: ManualClock
) -> None:
    retention = live.catalog.retention
    citizens = live.citizens
    citizens.consent.grant(CITIZEN, APP_STREAM)
    citizens.consent.withdraw(CITIZEN, APP_STREAM)
    old = key_of(live)
    clock.advance(retention.consent_proof_s + 1)
    assert sweep_keys(live) == 1
    first = subject_events(live)[0]["at"]

    issued = citizens.consent.grant(CITIZEN, APP_STREAM)
    fresh = key_of(live)
    assert fresh is not None and fresh != old
    assert citizens.consent.valid(CITIZEN, APP_STREAM)
    row = subject_row(live)
    assert row is not None and row["first_seen"] == clock.now()
    items = citizens.rights.export(CITIZEN, by="staff:dpo")["items"]
    (receipt,) = (i for i in items if i["kind"] == "consent_receipt")
    assert receipt["readable"]
    assert receipt["data"]["consentReceiptID"] == issued.receipt["consentReceiptID"]
    assert sweep_keys(live) == 0
    assert key_of(live) == fresh

    # Gone again later: the record says when the latest key went.
    citizens.consent.withdraw(CITIZEN, APP_STREAM)  # and the export's request is done
    clock.advance(max(retention.consent_proof_s, retention.subject_requests_s) + 1)
    assert sweep_keys(live) == 1
    assert key_of(live) is None
    (event,) = subject_events(live)
    assert event["at"] == clock.now() > first


def test_a_writer_holding_the_subject_keeps_its_key_from_a_concurrent_sweep(
    live: Platform, clock: ManualClock
) -> None:
    """Sealed but not yet committed: the sweep sees no row yet, and must wait for it."""
    keys = live.keys
    assert isinstance(keys, PausingKeys)
    citizens = live.citizens
    subject = handle(live)
    swept: list[int] = []
    sweeping = threading.Thread(
        target=lambda: swept.append(subject_key_target(live).sweep(clock.now()))
    )
    report_id = str(uuid.uuid4())
    with citizens.vault.sealing(subject) as box:  # what CitizenReports.file does, held up
        sealed = box.seal(b"Broken bench", report_context(report_id))
        assert keys.get(f"subject/{subject}") is not None
        sweeping.start()
        # Unsafe, the sweep would destroy the key now; safe, it waits for this transaction.
        keys.destroying.wait(timeout=1.0)
        citizens.rights.records.reports.add(
            {
                "id": report_id,
                "received_at": clock.now(),
                "category": CATEGORY,
                "cell": None,
                "subject": subject,
                "text": "",
                "text_sealed": sealed,
            },
            conn=box.conn,
        )
    sweeping.join(timeout=60)
    assert not sweeping.is_alive()
    assert swept == [0]
    assert key_of(live) is not None
    assert [r["text"] for r in citizens.reports.list()] == ["Broken bench"]


def test_a_grant_arriving_while_the_sweep_destroys_the_key_gets_a_fresh_one(
    live: Platform, clock: ManualClock
) -> None:
    """The sweep holds the subject and is destroying the key when the grant comes in."""
    keys = live.keys
    assert isinstance(keys, PausingKeys)
    citizens = live.citizens
    citizens.consent.grant(CITIZEN, APP_STREAM)
    citizens.consent.withdraw(CITIZEN, APP_STREAM)
    old = key_of(live)
    clock.advance(live.catalog.retention.consent_proof_s + 1)
    for target in live.retention.targets:  # the records go; the key's turn is next
        if target.name != "subject_keys":
            target.sweep(clock.now())
    assert live.citizens.rights.records.consents.receipts(handle(live)) == []
    assert old is not None and key_of(live) == old

    keys.proceed.clear()
    swept: list[int] = []
    sweeping = threading.Thread(
        target=lambda: swept.append(subject_key_target(live).sweep(clock.now()))
    )
    sweeping.start()
    assert keys.destroying.wait(timeout=30)
    granted = threading.Event()
    issued: list[dict[str, Any]] = []

    def grant() -> None:
        issued.append(citizens.consent.grant(CITIZEN, APP_STREAM).receipt)
        granted.set()

    granting = threading.Thread(target=grant)
    granting.start()
    # Unsafe, the grant would seal under the old key now; safe, it waits for the sweep.
    granted.wait(timeout=1.0)
    keys.proceed.set()
    sweeping.join(timeout=60)
    granting.join(timeout=60)
    assert not sweeping.is_alive() and not granting.is_alive()
    assert swept == [1]
    assert len(issued) == 1

    fresh = key_of(live)
    assert fresh is not None and fresh != old
    assert citizens.consent.valid(CITIZEN, APP_STREAM)
    assert subject_row(live) is not None
    items = citizens.rights.export(CITIZEN, by="staff:dpo")["items"]
    receipts = [i for i in items if i["kind"] == "consent_receipt"]
    assert len(receipts) == 1 and receipts[0]["readable"]
    assert receipts[0]["data"]["consentReceiptID"] == issued[0]["consentReceiptID"]


def test_cli_retention_run_prints_the_subject_keys_it_destroyed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from civicguard.cli import app

    monkeypatch.delenv("CIVICGUARD_MASTER_KEY", raising=False)
    monkeypatch.delenv("CIVICGUARD_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    # A consent given and withdrawn longer ago than the proof period (real clock for the CLI).
    long_ago = ManualClock(time.time() - demo_catalog().retention.consent_proof_s - 2 * DAY)
    platform = Platform.build(Settings(data_dir=data), clock=long_ago)
    platform.citizens.consent.grant(CITIZEN, APP_STREAM)
    platform.citizens.consent.withdraw(CITIZEN, APP_STREAM)
    platform.close()
    assert any(n.startswith("subject/") for n in FileKeyStore.in_dir(data).names())

    result = CliRunner().invoke(app, ["retention", "run", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "consent_receipts: 2 removed" in result.output
    assert "subject_keys: 1 removed" in result.output
    assert not any(n.startswith("subject/") for n in FileKeyStore.in_dir(data).names())
    again = CliRunner().invoke(app, ["retention", "run", "--data-dir", str(data)])
    assert "subject_keys: 0 removed" in again.output


def test_a_grant_arriving_during_an_erasure_survives_it(
    live: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure holds the subject from the key's destruction to the last deleted row."""
    keys = live.keys
    assert isinstance(keys, PausingKeys)
    citizens = live.citizens
    citizens.consent.grant(CITIZEN, APP_STREAM)
    consents = citizens.rights.records.consents
    granted = threading.Event()
    real_delete = consents.delete_subject

    def delete_once_the_grant_is_in(subject: str, conn: Any = None) -> int:
        # Unsafe, the grant gets in between the key's destruction and this delete (which
        # then takes it too); safe, the grant waits for the erasure, so this waits in vain.
        granted.wait(timeout=1.0)
        return real_delete(subject, conn)

    monkeypatch.setattr(consents, "delete_subject", delete_once_the_grant_is_in)
    eraser = threading.Thread(target=lambda: citizens.rights.erase(CITIZEN, by="staff:dpo"))
    eraser.start()
    assert keys.destroying.wait(timeout=10)

    def grant_again() -> None:
        citizens.consent.grant(CITIZEN, APP_STREAM)
        granted.set()

    granter = threading.Thread(target=grant_again)
    granter.start()
    eraser.join(timeout=60)
    granter.join(timeout=60)
    assert not eraser.is_alive() and not granter.is_alive()
    assert citizens.consent.valid(CITIZEN, APP_STREAM)
    assert key_of(live) is not None

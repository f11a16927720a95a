"""Subject rights: export with purpose and retention, erasure by crypto-shredding, backups."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from civicguard.citizens import RequestKind
from civicguard.citizens.consent import receipt_context
from civicguard.citizens.reports import ERASED, report_context
from civicguard.citizens.vault import SubjectVault, key_name
from civicguard.clock import ManualClock
from civicguard.ingest.model import Device
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings
from civicguard.store import schema

from .conftest import APP_STREAM, database_bytes, drain, reading, submit

CARMEN, DIEGO = "carmen-4410", "diego-9083"
REPORT = "The bench at the Jardin de San Marcos is broken, a child was hurt"


def _scrub(text: str) -> str:
    return text.replace("child", "<PERSON>")


@pytest.fixture
def lived(platform: Platform, clock: ManualClock) -> Platform:
    """Carmen and Diego each granted consent, withdrew part, and filed a report."""
    citizens = platform.citizens
    citizens.reports.scrub = _scrub  # the real scrubber is tested in test_reports
    for who in (CARMEN, DIEGO):
        citizens.consent.grant(who, APP_STREAM)
        clock.advance(60)
        citizens.reports.file(
            REPORT + f" ({who[:5]})", "damage", lat=21.88, lon=-102.29, citizen=who
        )
    clock.advance(60)
    citizens.consent.withdraw(CARMEN, APP_STREAM)
    return platform


def test_export_lists_everything_of_the_subject_with_purpose_and_retention(
    lived: Platform,
) -> None:
    exported = lived.citizens.rights.export(CARMEN, by="dpo")
    assert exported["subject"] == CARMEN
    kinds = sorted(item["kind"] for item in exported["items"])
    assert kinds == [
        "citizen_report",
        "consent",
        "consent_receipt",
        "consent_receipt",
        "subject_request",
    ]
    for item in exported["items"]:
        assert item["purpose"] and item["retention"], item
    (consent,) = [i for i in exported["items"] if i["kind"] == "consent"]
    assert consent["purpose"].startswith("public_safety: ")
    assert consent["data"]["withdrawn_at"] is not None
    assert consent["data"]["readings_retention_days"] == 2
    receipts = [i["data"] for i in exported["items"] if i["kind"] == "consent_receipt"]
    assert [r["x-civicguard"]["action"] for r in receipts] == ["grant", "withdraw"]
    (report,) = [i["data"] for i in exported["items"] if i["kind"] == "citizen_report"]
    assert report["text"] == _scrub(REPORT + " (carme)")
    # Diego's data is not in Carmen's export.
    assert "diego" not in str(exported)
    # The export itself is recorded as a done request.
    (request,) = lived.citizens.rights.records.requests.query(
        subject=lived.citizens.index.handle(CARMEN)
    )
    assert (request["kind"], request["status"]) == ("export", "done")


def test_requests_wait_for_the_dpo_who_carries_them_out(lived: Platform) -> None:
    rights = lived.citizens.rights
    asked = rights.request(CARMEN, RequestKind.ERASURE, by="letter to the DPO")
    pending = rights.pending()
    assert [r["id"] for r in pending] == [asked["id"]]
    assert "citizen_sealed" not in pending[0] and CARMEN not in str(pending)
    done = rights.fulfil(asked["id"], by="dpo")
    assert done["key_destroyed"] is True and done["request"] == asked["id"]
    assert rights.pending() == []
    with pytest.raises(LookupError, match="no pending request"):
        rights.fulfil(asked["id"], by="dpo")


def test_erasure_shreds_the_key_deletes_rows_and_keeps_others(lived: Platform) -> None:
    citizens = lived.citizens
    handle = citizens.index.handle(CARMEN)
    erased = citizens.rights.erase(CARMEN, by="dpo")
    assert erased.key_destroyed and erased.rows_deleted == 4  # 1 span, 2 receipts, 1 report
    assert key_name(handle) not in lived.keys.names()
    assert not citizens.consent.valid(CARMEN, APP_STREAM)
    assert citizens.consent.consents.of_subject(handle) == []
    texts = [r["text"] for r in citizens.reports.list()]
    assert texts == [_scrub(REPORT + " (diego)")]
    with lived.store.engine.connect() as conn:
        (subject,) = conn.execute(
            select(schema.subjects).where(schema.subjects.c.handle == handle)
        ).mappings()
        requests = conn.execute(select(schema.subject_requests)).mappings().all()
    assert subject["erased_at"] == lived.clock.now()
    assert [(r["kind"], r["status"]) for r in requests] == [("erasure", "done")]
    raw = database_bytes(lived)
    assert CARMEN.encode() not in raw and DIEGO.encode() not in raw
    # Diego is untouched.
    assert citizens.rights.export(DIEGO, by="dpo")["items"]


def test_a_backup_taken_before_the_erasure_cannot_be_read_after_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    keys = MemoryKeyStore()
    data = tmp_path / "data"
    platform = Platform.build(Settings(data_dir=data), clock=clock, keys=keys)
    try:
        platform.citizens.reports.scrub = _scrub
        platform.citizens.consent.grant(CARMEN, APP_STREAM)
        platform.citizens.reports.file(REPORT, "damage", citizen=CARMEN)
        handle = platform.citizens.index.handle(CARMEN)
        platform.store.engine.dispose()
        backup = tmp_path / "backup.db"
        shutil.copyfile(data / "civicguard.db", backup)
        assert b"Jardin" not in backup.read_bytes()  # sealed even before the erasure
        platform.citizens.rights.erase(CARMEN, by="dpo")
    finally:
        platform.close()

    # Restore the old backup over the live database; the same key store carries on.
    shutil.copyfile(backup, data / "civicguard.db")
    for stale in (data / "civicguard.db-wal", data / "civicguard.db-shm"):
        stale.unlink(missing_ok=True)
    restored = Platform.build(Settings(data_dir=data), clock=clock, keys=keys)
    try:
        citizens = restored.citizens
        receipts = citizens.consent.consents.receipts(handle)
        reports = citizens.rights.records.reports.query(subject=handle)
        assert receipts and reports  # the backup brought the rows back...
        vault = SubjectVault(keys, citizens.rights.records.subjects, clock)
        for row in receipts:
            sealed = bytes(row["document_sealed"])
            assert vault.open(handle, sealed, receipt_context(row["id"])) is None
        for row in reports:
            sealed = bytes(row["text_sealed"])
            assert vault.open(handle, sealed, report_context(row["id"])) is None
        # ...but nothing in them can be read, and the citizen id is in none of it.
        assert [r["text"] for r in citizens.reports.list()] == [ERASED]
        exported = citizens.rights.export(CARMEN, by="dpo")
        opened = [
            i for i in exported["items"] if i["kind"] in ("consent_receipt", "citizen_report")
        ]
        assert opened and all(i["readable"] is False for i in opened)
    finally:
        restored.close()
    assert CARMEN.encode() not in backup.read_bytes()
    assert b"Jardin" not in backup.read_bytes()


def test_a_subject_erased_and_seen_again_starts_afresh(lived: Platform) -> None:
    citizens = lived.citizens
    citizens.rights.erase(CARMEN, by="dpo")
    citizens.consent.grant(CARMEN, APP_STREAM)
    assert citizens.consent.valid(CARMEN, APP_STREAM)
    items = citizens.rights.export(CARMEN, by="dpo")["items"]
    assert [i["kind"] for i in items].count("consent_receipt") == 1


def test_the_subjects_readings_are_exported_and_erased_with_them(
    lived: Platform, clock: ManualClock, app_backend: Device
) -> None:
    citizens = lived.citizens
    citizens.consent.grant(CARMEN, APP_STREAM)  # again, after the withdrawal in `lived`
    now = clock.now()
    sent = submit(
        lived,
        app_backend,
        [reading(1, now, CARMEN), reading(2, now + 1, DIEGO), reading(3, now + 2, CARMEN)],
    )
    assert sent.accepted == 3
    # A day later the key has rotated: Carmen's next reading carries another pseudonym.
    clock.advance(86_400)
    citizens.consent.grant(DIEGO, APP_STREAM)
    assert submit(lived, app_backend, [reading(4, clock.now(), CARMEN)]).accepted == 1
    drain(lived)
    stored = lived.store.readings.query(stream=APP_STREAM)
    assert len({r["values"]["citizen"] for r in stored}) == 3  # two periods, two people

    items = citizens.rights.export(CARMEN, by="dpo")["items"]
    readings = [i for i in items if i["kind"] == "reading"]
    assert sorted(r["data"]["seq"] for r in readings) == [1, 3, 4]
    assert all(r["purpose"].startswith("public_safety") for r in readings)
    assert all("2 days" in r["retention"] for r in readings)
    assert {r["data"]["cell"] for r in readings} == {stored[0]["cell"]}

    erased = citizens.rights.erase(CARMEN, by="dpo")
    assert erased.rows_deleted >= 3
    assert [r["seq"] for r in lived.store.readings.query(stream=APP_STREAM)] == [2]

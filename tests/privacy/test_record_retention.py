"""No record outlives its retention either: consents and receipts, subject requests, erased
subjects, citizen reports and alert marks, with the durations of the catalog's ``retention``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from civicguard.catalog.loader import demo_catalog
from civicguard.citizens.records import CitizenRecords
from civicguard.citizens.retention import citizen_targets
from civicguard.clock import ManualClock
from civicguard.detect.model import AlertMark, Verdict
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.privacy.retention import RetentionSweeper, default_targets
from civicguard.store import schema
from civicguard.store.lifecycle import (
    KeyEventRepository,
    RetentionRepository,
    RetentionRunRepository,
)
from civicguard.store.repositories import Store

DAY = 86_400.0
NOW = 1_790_000_000.0
CATALOG = demo_catalog()
PROOF = CATALOG.retention.consent_proof_s / DAY
REQUESTS = CATALOG.retention.subject_requests_s / DAY
REPORTS = CATALOG.retention.citizen_reports_s / DAY
MARKS = CATALOG.retention.alert_marks_s / DAY
STREAM = "citizen.safety_app"


def ago(days: float) -> float:
    return NOW - days * DAY


def rows(store: Store, table: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def sweeper(store: Store, clock: ManualClock) -> RetentionSweeper:
    keys = MemoryKeyStore()
    targets = default_targets(
        CATALOG, RetentionRepository(store.engine), keys, KeyEventRepository(store.engine)
    )
    sweep = RetentionSweeper(targets, clock, RetentionRunRepository(store.engine))
    for target in citizen_targets(CATALOG.retention, CitizenRecords(store.engine)):
        sweep.register(target)
    return sweep


def fill(store: Store) -> None:
    """Records on both sides of each retention (5 days in or out: no row is borderline)."""
    records = CitizenRecords(store.engine)
    consents = records.consents

    def receipt(rid: str, subject: str, action: str, days: float) -> None:
        consents.add_receipt(rid, subject, STREAM, action, ago(days), b"sealed")

    # In force for years: the span and the receipt that proves it stay however old.
    consents.grant("sub_live", STREAM, ["public_safety"], ago(PROOF + 900), "r-live")
    receipt("r-live", "sub_live", "grant", PROOF + 900)
    # Withdrawn longer than the proof period ago: span and both receipts go.
    consents.grant("sub_gone", STREAM, ["public_safety"], ago(PROOF + 400), "r-gone-g")
    consents.withdraw("sub_gone", STREAM, None, ago(PROOF + 5), "r-gone-w")
    receipt("r-gone-g", "sub_gone", "grant", PROOF + 400)
    receipt("r-gone-w", "sub_gone", "withdraw", PROOF + 5)
    # Withdrawn within the proof period: span and both receipts stay (the grant is older).
    consents.grant("sub_recent", STREAM, ["public_safety"], ago(PROOF + 400), "r-rec-g")
    consents.withdraw("sub_recent", STREAM, None, ago(PROOF - 5), "r-rec-w")
    receipt("r-rec-g", "sub_recent", "grant", PROOF + 400)
    receipt("r-rec-w", "sub_recent", "withdraw", PROOF - 5)
    # Receipts of grants that changed nothing: no span names them; they go by age.
    receipt("r-noop-old", "sub_live", "grant", PROOF + 5)
    receipt("r-noop-young", "sub_live", "grant", PROOF - 5)

    for rid, status, days in [
        ("q-pending", "pending", REQUESTS + 900),
        ("q-old", "done", REQUESTS + 5),
        ("q-young", "done", REQUESTS - 5),
    ]:
        done = None if status == "pending" else ago(days)
        records.requests.add(
            {
                "id": rid,
                "subject": "sub_gone",
                "kind": "erasure",
                "status": status,
                "requested_at": ago(days + 1),
                "requested_by": "staff:dpo",
                "done_at": done,
                "done_by": None if done is None else "staff:dpo",
            }
        )
    records.subjects.ensure("sub_never_erased", ago(REQUESTS + 900))
    records.subjects.mark_erased("sub_erased_old", ago(REQUESTS + 5))
    records.subjects.mark_erased("sub_erased_young", ago(REQUESTS - 5))

    for rid, subject, days in [
        ("rep-old", None, REPORTS + 5),
        ("rep-old-named", "sub_live", REPORTS + 5),
        ("rep-young", None, REPORTS - 5),
    ]:
        records.reports.add(
            {
                "id": rid,
                "received_at": ago(days),
                "category": "lighting",
                "cell": None,
                "subject": subject,
                "text": "street light out",
                "text_sealed": None,
            }
        )
    for alert_id, days in [("a-old", MARKS + 5), ("a-young", MARKS - 5)]:
        store.marks.add(
            AlertMark(
                alert_id=alert_id,
                detector="band",
                kind="out_of_band",
                verdict=Verdict.FALSE,
                marked_by="operator-ana",
                marked_at=ago(days),
                note="sensor being serviced",
            )
        )


def test_no_record_outlives_its_retention(store: Store) -> None:
    fill(store)
    report = sweeper(store, ManualClock(NOW)).run()
    assert report.failed == {}

    spans = rows(store, schema.consents)
    assert sorted(s["subject"] for s in spans) == ["sub_live", "sub_recent"]
    for span in spans:
        assert span["withdrawn_at"] is None or NOW - span["withdrawn_at"] < PROOF * DAY
    receipts = {r["id"] for r in rows(store, schema.consent_receipts)}
    assert receipts == {"r-live", "r-rec-g", "r-rec-w", "r-noop-young"}

    requests = {r["id"] for r in rows(store, schema.subject_requests)}
    assert requests == {"q-pending", "q-young"}
    subjects = {s["handle"] for s in rows(store, schema.subjects)}
    assert subjects == {"sub_never_erased", "sub_erased_young"}
    assert {r["id"] for r in rows(store, schema.citizen_reports)} == {"rep-young"}
    assert [m["alert_id"] for m in rows(store, schema.alert_marks)] == ["a-young"]

    assert {
        name: report.removed[name]
        for name in (
            "consents",
            "consent_receipts",
            "subject_requests",
            "erased_subjects",
            "citizen_reports",
            "alert_marks",
        )
    } == {
        "consents": 1,
        "consent_receipts": 3,
        "subject_requests": 1,
        "erased_subjects": 1,
        "citizen_reports": 2,
        "alert_marks": 1,
    }
    assert sweeper(store, ManualClock(NOW)).run().total == 0


def test_years_later_only_what_is_in_force_or_pending_is_left(store: Store) -> None:
    fill(store)
    clock = ManualClock(NOW)
    sweep = sweeper(store, clock)
    sweep.run()
    clock.advance((PROOF + REQUESTS + REPORTS + MARKS) * DAY)
    sweep.run()
    assert [s["subject"] for s in rows(store, schema.consents)] == ["sub_live"]
    assert {r["id"] for r in rows(store, schema.consent_receipts)} == {"r-live"}
    assert [r["id"] for r in rows(store, schema.subject_requests)] == ["q-pending"]
    assert [s["handle"] for s in rows(store, schema.subjects)] == ["sub_never_erased"]
    assert rows(store, schema.citizen_reports) == []
    assert rows(store, schema.alert_marks) == []


def test_the_platform_registers_the_record_targets_and_sweeps_a_real_report(
    platform: Platform,
) -> None:
    names = [t.name for t in platform.retention.targets]
    assert {"alert_marks", "consents", "consent_receipts", "citizen_reports"} <= set(names)
    assert names.index("consents") < names.index("consent_receipts")
    platform.citizens.reports.file("The bench in the park is broken", "furniture")
    assert len(platform.citizens.reports.list()) == 1
    platform.clock.advance(REPORTS * DAY - 60)  # type: ignore[attr-defined]
    assert platform.retention.run().removed["citizen_reports"] == 0
    platform.clock.advance(120)  # type: ignore[attr-defined]
    assert platform.retention.run().removed["citizen_reports"] == 1
    assert platform.citizens.reports.list() == []

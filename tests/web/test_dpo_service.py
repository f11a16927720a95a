"""The DPO overview service on its own: destroyed keys, erasures, requests done, stray refusals."""

from __future__ import annotations

from civicguard.citizens import RequestKind
from civicguard.clock import ManualClock
from civicguard.govern.dpo import privacy_overview
from civicguard.ingest.model import Reason, Transport
from civicguard.platform import Platform
from civicguard.privacy.pseudonyms import key_name

DAY = 86_400.0


def drain(platform: Platform) -> None:
    while platform.processor.run_once(timeout=0):
        pass


def test_destroyed_keys_and_erasures_show_as_names_and_counts(
    platform: Platform, clock: ManualClock
) -> None:
    now = clock.now()
    anpr = platform.catalog.stream("traffic.anpr")
    # A period that ended more than the stream's retention ago: the sweep destroys its key.
    old_end = now - (anpr.retention_days + 2) * DAY
    old = key_name(anpr.name, old_end - DAY, old_end)
    young = key_name(anpr.name, now - DAY, now)
    platform.keys.get_or_create(old)
    platform.keys.get_or_create(young)

    platform.citizens.consent.grant("ana-1001", "citizen.safety_app")
    platform.citizens.consent.grant("luis-2002", "citizen.safety_app")
    request = platform.citizens.rights.request("ana-1001", RequestKind.ERASURE, by="staff:dpo")
    before = privacy_overview(platform)
    assert [p.id for p in before.pending_requests] == [request["id"]]
    assert before.keys.subject_keys_alive == 2
    assert before.keys.subjects_erased == 0

    platform.citizens.rights.fulfil(request["id"], by="staff:dpo")
    platform.retention.run()
    after = privacy_overview(platform)

    assert after.pending_requests == ()
    assert after.keys.subject_keys_alive == 1
    assert (after.keys.subjects_known, after.keys.subjects_erased) == (2, 1)
    stream = next(s for s in after.streams if s.name == anpr.name)
    assert stream.pseudonym_keys.names == (young,)
    assert (stream.pseudonym_keys.alive, stream.pseudonym_keys.destroyed) == (1, 1)
    assert after.keys.pseudonym_keys_destroyed == 1
    [destroyed] = after.keys.recent_destructions
    assert destroyed.name == old
    assert "retention" in destroyed.reason
    assert after.retention.last_run_removed["pseudonym_keys"] == 1

    text = str(after.as_dict())
    for citizen in ("ana-1001", "luis-2002"):
        assert citizen not in text
        assert platform.citizens.index.handle(citizen) not in text


def test_a_burst_of_subject_key_destructions_does_not_hide_a_pseudonym_key_destruction(
    platform: Platform, clock: ManualClock
) -> None:
    anpr = platform.catalog.stream("traffic.anpr")
    now = clock.now()
    old_end = now - (anpr.retention_days + 2) * DAY
    old = key_name(anpr.name, old_end - DAY, old_end)
    platform.keys.get_or_create(old)
    platform.retention.run()
    clock.advance(60.0)
    # Then many subjects whose records all age out: retention retires their keys together
    # (each destruction recorded, but a subject key is listed only as a count).
    for i in range(25):
        citizen = f"citizen-{i:03d}"
        platform.citizens.consent.grant(citizen, "citizen.safety_app")
        platform.citizens.consent.withdraw(citizen, "citizen.safety_app")
    retention = platform.catalog.retention
    clock.advance(max(retention.consent_proof_s, retention.subject_requests_s) + DAY)
    assert platform.retention.run().removed["subject_keys"] == 25
    overview = privacy_overview(platform, recent=2)
    assert [d.name for d in overview.keys.recent_destructions] == [old]


def test_refusals_of_no_stream_are_counted_apart(platform: Platform) -> None:
    platform.ingest.refuse(Reason.BAD_CREDENTIALS, "unknown token", Transport.HTTP, b"{}")
    platform.ingest.refuse(Reason.UNKNOWN_DEVICE, "no such device", Transport.MQTT)
    drain(platform)
    doc = privacy_overview(platform)
    assert doc.unattributed.process_refused == 2
    assert doc.unattributed.stored_dead_letters_by_reason == {
        "bad_credentials": 1,
        "unknown_device": 1,
    }
    assert all(s.process.refused == 0 and s.stored.dead_letters == 0 for s in doc.streams)


def test_a_restart_resets_process_counts_but_not_stored_ones(platform: Platform) -> None:
    platform.ingest.refuse(Reason.BAD_CREDENTIALS, "unknown token", Transport.HTTP)
    drain(platform)
    settings, clock, keys = platform.settings, platform.clock, platform.keys
    platform.close()
    restarted = Platform.build(settings, clock=clock, keys=keys)
    try:
        doc = privacy_overview(restarted)
        assert doc.unattributed.process_refused == 0
        assert doc.unattributed.stored_dead_letters_by_reason == {"bad_credentials": 1}
    finally:
        restarted.close()

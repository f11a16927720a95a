"""Consent: grants and withdrawals per purpose, and the gate of ingest that holds them."""

from __future__ import annotations

import pytest

from civicguard.citizens import ConsentError
from civicguard.clock import ManualClock
from civicguard.ingest.model import Device, Reason
from civicguard.metrics import METRICS
from civicguard.platform import Platform
from civicguard.store import schema

from .conftest import APP_STREAM, database_bytes, drain, reading, submit

ANA, BETO = "ana-7731", "beto-5520"


def refused_metric(stream: str) -> float:
    value = METRICS.registry.get_sample_value(
        "civicguard_consent_refused_total", {"stream": stream}
    )
    return value or 0.0


def test_grant_withdraw_and_validity_follow_time(platform: Platform, clock: ManualClock) -> None:
    consent = platform.citizens.consent
    t0 = clock.now()
    assert not consent.valid(ANA, APP_STREAM, t0)
    consent.grant(ANA, APP_STREAM, at=t0)
    assert consent.valid(ANA, APP_STREAM, t0)
    assert not consent.valid(ANA, APP_STREAM, t0 - 1)
    assert not consent.valid(BETO, APP_STREAM, t0)
    issued = consent.withdraw(ANA, APP_STREAM, at=t0 + 60)
    assert issued.purposes == ("public_safety",)
    assert issued.receipt["x-civicguard"]["action"] == "withdraw"
    assert consent.valid(ANA, APP_STREAM, t0 + 59)
    assert not consent.valid(ANA, APP_STREAM, t0 + 60)
    consent.grant(ANA, APP_STREAM, at=t0 + 120)
    assert consent.valid(ANA, APP_STREAM, t0 + 120)


@pytest.mark.parametrize(
    ("stream", "purposes", "problem"),
    [
        ("power.substation", None, "not on consent"),
        ("martian.radio", None, "not in the catalog"),
        (APP_STREAM, ["marketing"], "'marketing' are not purposes of citizen.safety_app"),
        (APP_STREAM, [], "at least one purpose"),
    ],
)
def test_a_grant_that_cannot_be_says_why(
    platform: Platform, stream: str, purposes: list[str] | None, problem: str
) -> None:
    with pytest.raises(ConsentError, match=problem):
        platform.citizens.consent.grant(ANA, stream, purposes)


def test_withdrawing_what_was_never_granted_is_an_error(platform: Platform) -> None:
    with pytest.raises(ConsentError, match="no consent in force"):
        platform.citizens.consent.withdraw(ANA, APP_STREAM)
    # ...that leaves nothing of the citizen behind, not even a key.
    assert not [n for n in platform.keys.names() if n.startswith("subject/")]


def test_the_store_holds_handles_never_the_citizen_id(platform: Platform) -> None:
    consent = platform.citizens.consent
    consent.grant(ANA, APP_STREAM)
    consent.withdraw(ANA, APP_STREAM)
    with platform.store.engine.connect() as conn:
        subjects = {r.subject for r in conn.execute(schema.consents.select())}
    assert subjects == {platform.citizens.index.handle(ANA)}
    assert ANA.encode() not in database_bytes(platform)


def test_readings_pass_only_with_consent_and_a_withdrawal_stops_the_next(
    platform: Platform, clock: ManualClock, app_backend: Device
) -> None:
    before = refused_metric(APP_STREAM)
    t0 = clock.now()
    platform.citizens.consent.grant(ANA, APP_STREAM, at=t0 - 10)

    first = submit(platform, app_backend, [reading(1, t0, ANA), reading(2, t0, BETO)])
    assert first.accepted == 1
    (refusal,) = first.rejections
    assert refusal.reason is Reason.NO_CONSENT
    assert (refusal.device_id, refusal.stream, refusal.seq) == (app_backend.id, APP_STREAM, 2)
    assert refusal.payload == b""
    assert BETO not in refusal.detail

    clock.advance(30)
    platform.citizens.consent.withdraw(ANA, APP_STREAM)
    clock.advance(1)
    after = submit(platform, app_backend, [reading(3, clock.now(), ANA)])
    assert after.accepted == 0
    assert [r.reason for r in after.rejections] == [Reason.NO_CONSENT]
    # A late reading taken before the withdrawal but arriving after it is refused as well.
    late = submit(platform, app_backend, [reading(4, t0 + 5, ANA)])
    assert late.accepted == 0

    drain(platform)
    assert platform.store.readings.count() == 1
    letters = platform.store.dead_letters.query(reason="no_consent")
    assert sorted(letter["seq"] for letter in letters) == [2, 3, 4]
    assert all(letter["payload"] == "" for letter in letters)
    assert refused_metric(APP_STREAM) - before == 3
    assert platform.citizens.gate.counts()[APP_STREAM] == {"admitted": 1, "refused": 3}
    raw = database_bytes(platform)
    assert ANA.encode() not in raw and BETO.encode() not in raw


def test_consent_to_only_part_of_the_purposes_is_not_enough(
    platform: Platform, clock: ManualClock, app_backend: Device
) -> None:
    from dataclasses import replace

    from civicguard.citizens.gate import ConsentGate
    from civicguard.citizens.vault import key_name

    stream = platform.catalog.stream(APP_STREAM)
    wider = replace(stream, purposes=("public_safety", "traffic_management"))
    catalog = replace(
        platform.catalog,
        streams=tuple(wider if s.name == APP_STREAM else s for s in platform.catalog.streams),
    )
    citizens = platform.citizens
    records = citizens.consent.consents
    gate = ConsentGate(catalog, records, citizens.index, citizens.vault, citizens.ledger)
    handle = citizens.index.handle(ANA)
    # Spans written straight to the table count only while the subject has a key.
    platform.keys.get_or_create(key_name(handle))
    records.grant(handle, APP_STREAM, ["public_safety"], clock.now() - 5, "r1")
    from civicguard.ingest.decode import Decoder
    from civicguard.ingest.model import Transport

    decoded = Decoder(catalog).decode(
        app_backend,
        [reading(1, clock.now(), ANA)],
        transport=Transport.HTTP,
        received_at=clock.now(),
    )
    (batch,) = decoded.batches
    kept, refused = gate.screen(batch)
    assert kept is None and len(refused) == 1
    records.grant(handle, APP_STREAM, ["traffic_management"], clock.now() - 5, "r2")
    kept, refused = gate.screen(batch)
    assert kept is not None and len(kept) == 1 and refused == []


def test_other_streams_never_reach_the_gate(platform: Platform, provision: object) -> None:
    device, _ = provision("power.substation")  # type: ignore[operator]
    ts = platform.clock.now()
    result = submit(
        platform,
        device,
        [{"seq": 1, "ts": ts, "values": {"voltage": 11.0, "frequency": 50.0, "load": 1.0}}],
    )
    assert result.accepted == 1
    assert "power.substation" not in platform.citizens.gate.counts()

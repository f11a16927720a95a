"""Lawful lookup: a raw identifier's pseudonym in a live period, refused clearly otherwise."""

from __future__ import annotations

import logging

import orjson
import pytest

from civicguard.clock import ManualClock
from civicguard.ingest.model import Transport
from civicguard.platform import Platform
from civicguard.privacy.lookup import (
    KeyDestroyedError,
    KeyNotCreatedError,
    LookupRefusedError,
    PseudonymLookup,
)
from civicguard.store.lifecycle import KeyEventRepository

DAY = 86_400.0
PLATE = "AGS-987-Z"


def lookup_of(platform: Platform) -> PseudonymLookup:
    journal = KeyEventRepository(platform.store.engine)
    return PseudonymLookup(platform.catalog, platform.keys, journal, platform.clock)


def read_plate(platform: Platform, provision, ts: float) -> str:
    """Ingest one plate read at ``ts``, store it, and return the stored pseudonym."""
    camera, _ = provision("traffic.anpr")
    values = {"plate": PLATE, "lane": 2, "speed": 31.0, "vehicle_class": "van"}
    body = orjson.dumps([{"seq": 1, "ts": ts, "values": values}])
    assert platform.ingest.submit(camera, body, Transport.HTTP).accepted == 1
    while platform.processor.run_once(timeout=0):
        pass
    (row,) = platform.store.readings.query(stream="traffic.anpr")
    return str(row["values"]["plate"])


def test_lookup_finds_the_stored_pseudonym(platform: Platform, provision, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    ts = platform.clock.now() - 3600
    stored = read_plate(platform, provision, ts)
    service = lookup_of(platform)
    keys_before = platform.keys.names()
    found = service.pseudonym("traffic.anpr", PLATE, at=ts)
    assert found.pseudonym == stored
    assert (found.field, found.stream) == ("plate", "traffic.anpr")
    assert found.period_start <= ts < found.period_end
    assert found.key_destroyed_after == found.period_end + 30 * DAY
    # Another spelling of the same plate, any time in the same period: the same pseudonym.
    again = service.pseudonym("traffic.anpr", "ags 987 z", at=found.period_start)
    assert again.pseudonym == stored
    assert service.pseudonym("traffic.anpr", "AGS-987-Y", at=ts).pseudonym != stored
    assert platform.keys.names() == keys_before  # a lookup never makes a key
    assert PLATE not in caplog.text and "AGS987Z" not in caplog.text


def test_a_period_without_a_key_is_refused_and_no_key_is_made(platform: Platform) -> None:
    service = lookup_of(platform)
    with pytest.raises(KeyNotCreatedError) as caught:
        service.pseudonym("traffic.anpr", PLATE, at=platform.clock.now() + 5 * DAY)
    assert "nothing was pseudonymised" in str(caught.value)
    assert PLATE not in str(caught.value)
    assert not [k for k in platform.keys.names() if k.startswith("pseudonym/")]


def test_a_destroyed_period_is_refused_with_when_and_why(
    platform: Platform, provision, clock: ManualClock
) -> None:
    ts = clock.now()
    read_plate(platform, provision, ts)
    clock.advance(45 * DAY)
    assert platform.retention.run().removed["pseudonym_keys"] == 1
    with pytest.raises(KeyDestroyedError) as caught:
        lookup_of(platform).pseudonym("traffic.anpr", PLATE, at=ts)
    message = str(caught.value)
    assert "destroyed" in message and "retention" in message
    assert PLATE not in message and "AGS987Z" not in message


def test_a_period_past_retention_without_a_record_is_refused_as_gone(
    platform: Platform, clock: ManualClock
) -> None:
    with pytest.raises(KeyDestroyedError, match="past its retention"):
        lookup_of(platform).pseudonym("traffic.anpr", PLATE, at=clock.now() - 60 * DAY)


@pytest.mark.parametrize(
    ("stream", "field", "message"),
    [
        ("traffic.nowhere", None, "not in the catalog"),
        ("presence.wifi", None, "pseudonymises no field"),  # MACs are counted, not kept
        ("power.substation", None, "pseudonymises no field"),
        ("traffic.anpr", "lane", "no pseudonymised field 'lane'"),
    ],
)
def test_lookups_that_cannot_be_answered_say_why(
    platform: Platform, stream: str, field: str | None, message: str
) -> None:
    with pytest.raises(LookupRefusedError, match=message):
        lookup_of(platform).pseudonym(stream, PLATE, at=platform.clock.now(), field=field)


def test_an_empty_identifier_is_refused(platform: Platform) -> None:
    with pytest.raises(LookupRefusedError, match="empty"):
        lookup_of(platform).pseudonym("traffic.anpr", "  ", at=platform.clock.now())

"""A refusal the event log delivers again is one dead letter (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses

from civicguard.ingest.model import Reason, Rejection, Transport
from civicguard.store.repositories import Store


def _refusal(seq: int) -> Rejection:
    return Rejection(
        reason=Reason.OUT_OF_RANGE,
        detail="no2: above the range 0..2000",
        transport=Transport.HTTP,
        received_at=1_790_000_000.0 + seq,
        device_id="aq-1",
        stream="air.quality",
        seq=seq,
        payload=b'{"seq": 1}',
    )


def test_a_refusal_written_again_is_stored_once(store: Store) -> None:
    first, second = _refusal(1), _refusal(2)
    store.dead_letters.write([first, second])
    store.dead_letters.write([first])  # delivered again after a crash
    store.dead_letters.write([second, second, _refusal(3)])  # and twice in one write
    assert store.dead_letters.count_by_reason() == {"out_of_range": 3}


def test_equal_refusals_made_twice_are_two_dead_letters(store: Store) -> None:
    refusal = _refusal(1)
    twin = dataclasses.replace(refusal, id=_refusal(1).id)  # the same content, refused again
    assert twin.id != refusal.id
    store.dead_letters.write([refusal, twin])
    assert store.dead_letters.count_by_reason() == {"out_of_range": 2}

"""A poison event dead-lettered again (its worker died before acknowledging) is one dead letter."""

from __future__ import annotations

from civicguard.worker import dead_letter
from tests.bus.events import batch, rejection


def test_the_same_poison_event_gets_the_same_dead_letter_identity() -> None:
    failed = batch(5)
    first = dead_letter(failed, ValueError("boom"), 3, 0)
    again = dead_letter(failed, RuntimeError("other"), 4, 0)
    assert first.id == again.id


def test_different_poison_events_get_different_identities() -> None:
    ids = {
        dead_letter(batch(5), ValueError(), 3, 0).id,
        dead_letter(batch(5, first_seq=100), ValueError(), 3, 0).id,
        dead_letter(rejection(), ValueError(), 3, 0).id,
    }
    assert len(ids) == 3

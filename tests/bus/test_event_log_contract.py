"""One contract, every event log: what ingest publishes is what a worker consumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from civicguard.bus.local import LocalEventLog
from civicguard.bus.memory import MemoryEventLog
from civicguard.bus.port import Event, EventLog
from civicguard.ingest.model import Reason, Rejection, Transport
from tests.bus.events import assert_same, batch, consume_all, rejection, seqs


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    if kind == "memory":
        memory = MemoryEventLog()
        yield memory
        memory.close()
    elif kind == "local":
        local = LocalEventLog(tmp_path / "events.db")
        yield local
        local.close()
    else:
        yield request.getfixturevalue("nats_log")()


@pytest.fixture(params=["memory", "local", pytest.param("nats", marks=pytest.mark.nats)])
def event_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    """Each registered event log adapter, fresh."""
    yield from _open(request.param, request, tmp_path)


@pytest.fixture(params=["memory", "local", pytest.param("nats", marks=pytest.mark.nats)])
def releasing_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    """Each adapter that hands back what a failed step took, fresh."""
    yield from _open(request.param, request, tmp_path)


def test_round_trip_keeps_every_field(event_log: EventLog) -> None:
    sent: list[Event] = [batch(4), rejection(), rejection(full=False), batch(1, stream="noise")]
    event_log.publish(sent)
    got = consume_all(event_log, len(sent))
    event_log.commit()
    assert len(got) == len(sent)
    for g, s in zip(got, sent, strict=True):
        assert_same(g, s)


def test_consume_on_an_empty_log_times_out_with_nothing(event_log: EventLog) -> None:
    assert event_log.consume(10, 0.2) == []
    event_log.publish([])
    assert event_log.consume(10, 0.05) == []


def test_consume_respects_max_events_and_order(event_log: EventLog) -> None:
    event_log.publish([batch(1, first_seq=i) for i in range(5)])
    first = consume_all(event_log, 2)
    assert seqs(first) == [0, 1]
    event_log.commit()
    rest = consume_all(event_log, 3)
    assert seqs(rest) == [2, 3, 4]


def test_committed_events_are_not_delivered_again(event_log: EventLog) -> None:
    event_log.publish([batch(2, first_seq=10), rejection()])
    got = consume_all(event_log, 2)
    event_log.commit()
    assert len(got) == 2
    assert event_log.consume(10, 0.3) == []
    event_log.publish([batch(1, first_seq=20)])
    assert seqs(consume_all(event_log, 1)) == [20]
    event_log.commit()


def test_released_events_are_consumed_again_in_order(releasing_log: EventLog) -> None:
    releasing_log.publish([batch(1, first_seq=i) for i in range(4)])
    assert seqs(consume_all(releasing_log, 3)) == [0, 1, 2]
    releasing_log.release()
    assert seqs(consume_all(releasing_log, 4)) == [0, 1, 2, 3]
    releasing_log.commit()
    assert releasing_log.consume(10, 0.2) == []


def test_release_hands_back_only_what_was_not_committed(releasing_log: EventLog) -> None:
    releasing_log.publish([batch(1, first_seq=i) for i in range(4)])
    assert seqs(consume_all(releasing_log, 2)) == [0, 1]
    releasing_log.commit()
    assert seqs(consume_all(releasing_log, 1)) == [2]
    releasing_log.release()
    assert seqs(consume_all(releasing_log, 2)) == [2, 3]
    releasing_log.commit()
    releasing_log.release()  # nothing outstanding: nothing comes back
    assert releasing_log.consume(10, 0.2) == []


def test_a_refusal_keeps_its_identity_through_the_log(releasing_log: EventLog) -> None:
    sent = rejection()
    releasing_log.publish([sent])
    first = consume_all(releasing_log, 1)
    releasing_log.release()
    again = consume_all(releasing_log, 1)
    assert isinstance(first[0], Rejection) and isinstance(again[0], Rejection)
    assert first[0].id == again[0].id == sent.id


def test_each_refusal_made_gets_its_own_identity() -> None:
    made = [
        Rejection(reason=Reason.MALFORMED_JSON, detail="", transport=Transport.HTTP, received_at=0)
        for _ in range(3)
    ]
    assert len({r.id for r in made}) == 3

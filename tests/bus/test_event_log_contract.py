"""One contract, every event log: what ingest publishes is what a worker consumes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from civicguard.bus.memory import MemoryEventLog
from civicguard.bus.port import Event, EventLog
from tests.bus.events import assert_same, batch, consume_all, rejection, seqs


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def event_log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    """Each registered event log adapter, fresh."""
    if request.param == "memory":
        memory = MemoryEventLog()
        yield memory
        memory.close()
    else:
        yield request.getfixturevalue("nats_log")()


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

"""The durable local event log: what it promises beyond the common contract.

Published means on disk (a kill -9 of the publisher right after loses nothing); consumed but
not committed comes again to the next consumer; one consumer at a time; a disk that cannot
take the events refuses the publish as a whole.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from civicguard.bus.local import LocalEventLog
from civicguard.bus.port import EventLogUnavailable
from tests.bus.events import assert_same, batch, consume_all, rejection, seqs
from tests.bus.small_disk import fill, small_disk

ROOT = Path(__file__).resolve().parents[2]

#: A child that publishes four batches and a refusal, says so, and waits to be killed.
PUBLISHER = """
import sys, time
from civicguard.bus.local import LocalEventLog
from tests.bus.events import batch, rejection
log = LocalEventLog(sys.argv[1])
log.publish([batch(3, first_seq=10 * i) for i in range(4)] + [rejection()])
print("published", flush=True)
time.sleep(60)
"""

#: A child that consumes everything without committing, says how much, and waits to be killed.
CONSUMER = """
import sys, time
from civicguard.bus.local import LocalEventLog
from tests.bus.events import consume_all
log = LocalEventLog(sys.argv[1])
print("consumed", len(consume_all(log, int(sys.argv[2]))), flush=True)
time.sleep(60)
"""


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )


def _kill_after_line(child: subprocess.Popen[str]) -> str:
    """The child's first line of output, then kill -9."""
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return line


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def opened() -> Iterator[list[LocalEventLog]]:
    """Logs a test opens, closed at its end."""
    logs: list[LocalEventLog] = []
    yield logs
    for log in logs:
        log.close()


def test_published_events_survive_kill_9_of_the_publisher(
    path: Path, opened: list[LocalEventLog]
) -> None:
    assert _kill_after_line(_child(PUBLISHER, str(path))) == "published"
    log = LocalEventLog(path)
    opened.append(log)
    got = consume_all(log, 5)
    assert seqs(got[:4]) == [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]
    assert_same(got[0], batch(3, first_seq=0))
    refusal = rejection()
    assert got[4].reason == refusal.reason and got[4].payload == refusal.payload  # type: ignore[union-attr]


def test_a_consumer_killed_before_commit_leaves_everything_to_the_next(
    path: Path, opened: list[LocalEventLog]
) -> None:
    producer = LocalEventLog(path)
    opened.append(producer)
    producer.publish([batch(2, first_seq=2 * i) for i in range(3)])
    assert _kill_after_line(_child(CONSUMER, str(path), "3")) == "consumed 3"
    consumer = LocalEventLog(path)
    opened.append(consumer)
    assert seqs(consume_all(consumer, 3)) == [0, 1, 2, 3, 4, 5]
    consumer.commit()
    consumer.close()
    again = LocalEventLog(path)
    opened.append(again)
    assert again.consume(10, 0.2) == []


def test_committed_events_leave_the_file(path: Path, opened: list[LocalEventLog]) -> None:
    log = LocalEventLog(path)
    opened.append(log)
    log.publish([batch(2), rejection()])
    consume_all(log, 2)
    log.commit()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)
    finally:
        db.close()


def test_one_consumer_at_a_time(path: Path, opened: list[LocalEventLog]) -> None:
    first, second = LocalEventLog(path), LocalEventLog(path)
    opened.extend([first, second])
    first.publish([batch(1, first_seq=i) for i in range(3)])
    assert seqs(consume_all(first, 1)) == [0]
    assert second.consume(10, 0.3) == []  # the first holds the log
    first.close()  # dies without committing: the second takes over from the start
    assert seqs(consume_all(second, 3)) == [0, 1, 2]


def test_a_waiting_consumer_gets_what_another_thread_publishes(
    path: Path, opened: list[LocalEventLog]
) -> None:
    log = LocalEventLog(path)
    opened.append(log)
    assert log.consume(1, 0.05) == []  # now the consumer
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.extend(log.consume(5, 30)))
    waiter.start()
    log.publish([batch(1, first_seq=7)])
    waiter.join(timeout=30)
    assert seqs(got) == [7]  # type: ignore[arg-type]


def test_a_waiting_consumer_gets_what_another_process_publishes(
    path: Path, opened: list[LocalEventLog]
) -> None:
    log = LocalEventLog(path)
    opened.append(log)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.extend(log.consume(5, 30)))
    waiter.start()
    assert _kill_after_line(_child(PUBLISHER, str(path))) == "published"
    waiter.join(timeout=30)
    assert len(got) >= 1
    assert seqs(got[:1]) == [0, 1, 2]  # type: ignore[arg-type]


def test_a_full_disk_refuses_the_whole_publish(tmp_path: Path, opened: list[LocalEventLog]) -> None:
    with small_disk(tmp_path / "disk", size_mb=8) as disk:
        log = LocalEventLog(disk / "events.db")
        opened.append(log)
        log.publish([batch(1, first_seq=1)])
        filler = fill(disk)
        with pytest.raises(EventLogUnavailable, match="full"):
            log.publish([batch(2000, first_seq=100 + 2000 * i) for i in range(4)])
        filler.unlink()
        log.publish([batch(1, first_seq=2)])
        assert seqs(consume_all(log, 3, timeout=1.0)) == [1, 2]
        log.close()


def test_the_consumer_gets_its_own_process_events_whole_kept_or_read(
    path: Path, opened: list[LocalEventLog]
) -> None:
    log = LocalEventLog(path)
    opened.append(log)
    assert log.consume(1, 0.05) == []  # the consumer from now on: keeps what it publishes
    sent = [batch(4, first_seq=1), rejection(), batch(1, stream="noise")]
    log.publish(sent)
    for got, want in zip(consume_all(log, 3), sent, strict=True):
        assert_same(got, want)
    log.release()
    for got, want in zip(consume_all(log, 3), sent, strict=True):
        assert_same(got, want)
    log.close()  # not committed: the next consumer reads them from the file
    after = LocalEventLog(path)
    opened.append(after)
    for got, want in zip(consume_all(after, 3), sent, strict=True):
        assert_same(got, want)

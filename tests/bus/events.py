"""Events for event-log tests, and a field-by-field comparison of them."""

from __future__ import annotations

import time

import numpy as np

from civicguard.bus.port import Event, EventLog
from civicguard.ingest.model import ReadingBatch, Reason, Rejection, Transport


def batch(n: int = 3, *, stream: str = "air.quality", first_seq: int = 0) -> ReadingBatch:
    """A protected batch with absent values (NaN), text columns and per-reading cells."""
    values = np.arange(n * 3, dtype=np.float64).reshape(n, 3) / 7.0
    values[0, 1] = np.nan
    if n > 2:
        values[2, :] = np.nan
    return ReadingBatch(
        stream=stream,
        fields=("pm25", "no2", "temperature"),
        device_ids=tuple(f"aq-{i % 2:02d}" for i in range(n)),
        seq=np.arange(first_seq, first_seq + n, dtype=np.int64),
        ts=1_790_000_000.0 + np.arange(n, dtype=np.float64) * 0.25,
        received_at=1_790_000_001.5 + np.arange(n, dtype=np.float64),
        values=values,
        text={
            "status": ["ok", "calibrating", "ok ñ"][:n] + ["ok"] * max(0, n - 3),
            "flags": [["a", "b"]] * n,
        },
        cells=tuple(f"8a4983a6c6{i:d}ffff" for i in range(n)),
        transport=Transport.MQTT,
    )


def rejection(*, full: bool = True) -> Rejection:
    """A dead letter with every optional field set (``full``) or none of them.

    Its identity is fixed, so two calls give equal refusals (a real refusal gets a random one).
    """
    if not full:
        return Rejection(
            reason=Reason.BAD_CREDENTIALS,
            detail="no such token",
            transport=Transport.HTTP,
            received_at=1_790_000_002.0,
            id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        )
    return Rejection(
        reason=Reason.OUT_OF_RANGE,
        detail="voltage 99 is outside 0..40",
        transport=Transport.REPLAY,
        received_at=1_790_000_003.125,
        device_id="substation-007",
        stream="power.substation",
        seq=42,
        index=3,
        payload=b'{"seq": 42, "values": {"voltage": 99}}',
        id="00112233445566778899aabbccddeeff",
    )


def assert_same(got: Event, want: Event) -> None:
    """Fail unless ``got`` carries every field of ``want`` unchanged (NaN equal to NaN)."""
    assert type(got) is type(want)
    if isinstance(want, Rejection):
        assert got == want
        return
    assert isinstance(got, ReadingBatch)
    assert got.stream == want.stream
    assert got.fields == want.fields
    assert got.device_ids == want.device_ids
    assert got.cells == want.cells
    assert got.text == want.text
    assert got.transport is want.transport
    for name in ("seq", "ts", "received_at", "values"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(np.isnan(got.values), np.isnan(want.values))


def seqs(events: list[Event]) -> list[int]:
    """The sequence numbers of every reading in ``events``, in order."""
    out: list[int] = []
    for event in events:
        assert isinstance(event, ReadingBatch)
        out.extend(int(s) for s in event.seq)
    return out


def consume_all(log: EventLog, expected: int, timeout: float = 5.0) -> list[Event]:
    """Consume (without committing) until ``expected`` events came or ``timeout`` s passed.

    One consume returns what is ready, at least one event: on a loaded machine the rest of
    a burst may come only with the next call.
    """
    got: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got.extend(log.consume(expected - len(got), 0.5))
    return got

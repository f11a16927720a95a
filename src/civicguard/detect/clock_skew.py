"""Clock skew: a device whose clock runs persistently ahead of or behind the platform's.

A skewed clock breaks ordering, replay protection and every time window downstream; it is a
dead RTC battery as often as a GNSS-time spoofer. Each batch gives one observation per device:
the offset of its newest reading in the batch from the moment the platform received it. The
newest, because a gateway that uploads a buffered backlog sends old readings with a correct
clock, and its newest reading is fresh. Readings ingest refused for a time outside its window
(``timestamp_in_future`` / ``timestamp_too_old``) are observations too, so that a clock too far
off for any reading to be accepted still raises the same alert.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from civicguard.catalog.model import Catalog
from civicguard.detect._support import (
    BoolArray,
    FloatArray,
    Places,
    alert,
    explain,
    figure,
    group_ends,
    number,
)
from civicguard.detect.base import Detector, SlotIndex, grow
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.decode import ReadingError, parse_timestamp
from civicguard.ingest.model import Device, ReadingBatch, Reason, Rejection

_TIME_REFUSALS = frozenset({Reason.TIMESTAMP_IN_FUTURE, Reason.TIMESTAMP_TOO_OLD})


@dataclass(kw_only=True)
class _StreamState:
    #: The last ``k`` offsets (reading time minus arrival, seconds) of each device, NaN-padded.
    offsets: FloatArray
    #: Where each device writes its next offset in its ring.
    #: 1.0 where the offset beside it came from a refused reading.
    refused: FloatArray
    cursor: FloatArray = field(default_factory=lambda: np.zeros(0))
    last_seq: FloatArray = field(default_factory=lambda: np.zeros(0))
    last_ts: FloatArray = field(default_factory=lambda: np.zeros(0))
    alerted: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    slots: SlotIndex = field(default_factory=SlotIndex)


class ClockSkewDetector(Detector):
    """Alerts once per episode when the median of a device's last ``k`` offsets exceeds
    ``tolerance_s`` (either way), judged from ``min_observations`` observations on.

    The episode ends when the median comes back within the tolerance. Thirty seconds is far
    beyond network delay and NTP error, and well inside ingest's accepted window (5 min ahead,
    a day behind in the demo catalog), so skew shows here before readings are refused.
    """

    name = "clock_skew"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        tolerance_s: float = 30.0,
        k: int = 5,
        min_observations: int = 3,
    ) -> None:
        self._device = device
        self._places = Places(catalog, device)
        self.tolerance_s = tolerance_s
        self.k = k
        self.min_observations = min_observations
        self._limits = catalog.limits
        self._states = {
            s.name: _StreamState(offsets=np.full((0, k), np.nan), refused=np.zeros((0, k)))
            for s in catalog.streams
        }

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """One observation per device in the batch: its newest reading's offset."""
        state = self._states.get(batch.stream)
        if state is None or len(batch) == 0:
            return []
        slots = state.slots.lookup(batch.device_ids)
        self._grow(state)
        order = np.lexsort((batch.ts, slots))
        newest = order[group_ends(slots[order])]
        devices = slots[newest]
        offsets = batch.ts[newest] - batch.received_at[newest]
        state.last_seq[devices] = batch.seq[newest]
        state.last_ts[devices] = batch.ts[newest]
        self._observe(state, devices, offsets, refused=False)
        return self._judge(batch.stream, state, devices, now)

    def on_rejection(self, rejection: Rejection, now: float) -> list[Alert]:
        """A reading refused for its time is an observation of its device's clock."""
        if rejection.reason not in _TIME_REFUSALS or not rejection.device_id:
            return []
        device = self._device(rejection.device_id)
        stream = rejection.stream or (device.stream if device else "")
        state = self._states.get(stream)
        if state is None:
            return []
        slots = state.slots.lookup([rejection.device_id])
        self._grow(state)
        ts = _refused_ts(rejection.payload)
        if ts is None:
            # No time to read (withheld payload): the refusal itself bounds the offset.
            future = rejection.reason is Reason.TIMESTAMP_IN_FUTURE
            offset = self._limits.max_future_s if future else -self._limits.max_age_s
        else:
            offset = ts - rejection.received_at
            if rejection.seq is not None:
                state.last_seq[slots] = rejection.seq
            state.last_ts[slots] = ts
        self._observe(state, slots, np.array([offset]), refused=True)
        return self._judge(stream, state, slots, now)

    def _grow(self, state: _StreamState) -> None:
        size = len(state.slots)
        state.offsets = grow(state.offsets, size, np.nan)
        state.cursor = grow(state.cursor, size, 0.0)
        state.refused = grow(state.refused, size, 0.0)
        state.last_seq = grow(state.last_seq, size, -1.0)
        state.last_ts = grow(state.last_ts, size, np.nan)
        state.alerted = grow(state.alerted, size, False)

    def _observe(
        self, state: _StreamState, devices: np.ndarray, offsets: FloatArray, *, refused: bool
    ) -> None:
        """Write one offset per device (``devices`` are distinct) into its ring."""
        position = state.cursor[devices].astype(np.intp) % self.k
        state.offsets[devices, position] = offsets
        state.refused[devices, position] = 1.0 if refused else 0.0
        state.cursor[devices] += 1

    def _judge(
        self, stream: str, state: _StreamState, devices: np.ndarray, now: float
    ) -> list[Alert]:
        ready = devices[state.cursor[devices] >= self.min_observations]
        if len(ready) == 0:
            return []
        median = np.nanmedian(state.offsets[ready], axis=1)
        skewed = np.abs(median) > self.tolerance_s
        # Back within tolerance: the episode is over and the device may alert again.
        state.alerted[ready[~skewed]] = False
        fresh = ready[skewed & ~state.alerted[ready]]
        state.alerted[fresh] = True
        medians = dict(zip(ready.tolist(), median.tolist(), strict=True))
        return [self._alert(stream, state, slot, medians[slot], now) for slot in fresh.tolist()]

    def _alert(
        self, stream: str, state: _StreamState, slot: int, median: float, now: float
    ) -> Alert:
        device_id = state.slots.ids[slot]
        place = self._places.of(stream, device_id)
        ring = state.offsets[slot]
        oldest_first = np.roll(ring, -(int(state.cursor[slot]) % self.k)).tolist()
        observed = [x for x in oldest_first if math.isfinite(x)]
        direction = "ahead of" if median > 0 else "behind"
        refused = int(state.refused[slot][~np.isnan(ring)].sum())
        last_ts = float(state.last_ts[slot])
        seq = int(state.last_seq[slot])
        readings: list[dict[str, Any]] = []
        if math.isfinite(last_ts):
            readings.append({"seq": seq if seq >= 0 else None, "ts": last_ts, "values": {}})
        score = abs(median) / self.tolerance_s
        return alert(
            detector=self.name,
            kind="clock_skew",
            severity=Severity.MEDIUM,
            title=(f"Clock of {place.name} runs {abs(median):.0f} s {direction} the platform's"),
            explanation=explain(
                seen=(
                    f"The readings of {place.name} are stamped a median {figure(abs(median), 1)} s "
                    f"{direction} the time they arrive, over its last {len(observed)} "
                    f"observations ({refused} of them refused for their time)"
                ),
                against=(
                    f"while network delay and clock drift stay within {figure(self.tolerance_s)} "
                    "s; a backlog upload is not counted, only each upload's newest reading"
                ),
                sure=(
                    f"Sure that the clock is off ({figure(score, 1)} times the tolerance); a "
                    "flat clock battery, lost time sync or spoofed GNSS time are the usual causes"
                ),
                detector=self.name,
                score=score,
            ),
            stream=stream,
            device_id=device_id,
            place=place,
            ts=last_ts if math.isfinite(last_ts) else now,
            now=now,
            evidence={
                "median_offset_s": number(median),
                "tolerance_s": self.tolerance_s,
                "offsets_s": observed,
                "refused_for_time": refused,
                "max_future_s": self._limits.max_future_s,
                "max_age_s": self._limits.max_age_s,
                "score": number(score),
                "readings": readings,
            },
        )


def _refused_ts(payload: bytes) -> float | None:
    """The ``ts`` of a refused reading's (already redacted) payload, in Unix seconds."""
    try:
        parsed = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or "ts" not in parsed:
        return None
    try:
        return parse_timestamp(parsed["ts"])
    except ReadingError:
        return None

"""Silence: a device that used to report and has stopped (cut cable, jammer, dead battery)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from civicguard.catalog.model import Catalog
from civicguard.detect._support import (
    BoolArray,
    FloatArray,
    Horizon,
    Places,
    alert,
    explain,
    figure,
    group_ends,
    number,
)
from civicguard.detect.base import Detector, SlotIndex, grow
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, ReadingBatch


@dataclass(kw_only=True)
class _StreamState:
    interval_s: float
    #: When the platform last received a reading from each device (its own clock, not the device's).
    last_seen: FloatArray = field(default_factory=lambda: np.empty(0))
    last_ts: FloatArray = field(default_factory=lambda: np.empty(0))
    last_seq: FloatArray = field(default_factory=lambda: np.empty(0))
    alerted: BoolArray = field(default_factory=lambda: np.empty(0, dtype=np.bool_))
    slots: SlotIndex = field(default_factory=SlotIndex)


class SilenceDetector(Detector):
    """Alerts once per silence: no reading for ``missed`` report intervals plus ``grace_s``.

    Only devices that have reported since the platform started are watched; the alert is
    re-armed when the device reports again. Revoked devices are silent on purpose.

    Silence is measured up to what the platform has processed, not up to the clock (see
    :class:`~civicguard.detect._support.Horizon`): while readings keep coming through, a
    device is silent when it is missing from them, up to the newest receipt time processed. A
    pipeline that falls behind under load (a backlog in the event log) therefore never makes
    the whole fleet look silent. When nothing at all has come through for longer than a
    stream's limit, the clock is the measure again, so a city-wide outage is still raised,
    device by device.
    """

    name = "silence"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        missed: float = 3.0,
        grace_s: float = 1.0,
    ) -> None:
        self._places = Places(catalog, device)
        self._missed = missed
        self._grace_s = grace_s
        self._states = {
            s.name: _StreamState(interval_s=s.report_interval_s) for s in catalog.streams
        }
        self._horizon = Horizon()

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Note when each device was last heard from."""
        state = self._states.get(batch.stream)
        if state is None or len(batch) == 0:
            return []
        slots = state.slots.lookup(batch.device_ids)
        size = len(state.slots)
        state.last_seen = grow(state.last_seen, size, -np.inf)
        state.last_ts = grow(state.last_ts, size, -np.inf)
        state.last_seq = grow(state.last_seq, size, -1.0)
        state.alerted = grow(state.alerted, size, False)
        np.maximum.at(state.last_seen, slots, batch.received_at)
        self._horizon.note(batch.received_at, now)
        order = np.lexsort((batch.ts, slots))
        last = order[group_ends(slots[order])]
        newer = batch.ts[last] >= state.last_ts[slots[last]]
        state.last_ts[slots[last[newer]]] = batch.ts[last[newer]]
        state.last_seq[slots[last[newer]]] = batch.seq[last[newer]]
        state.alerted[slots] = False
        return []

    def tick(self, now: float) -> list[Alert]:
        """Alert on every device silent for longer than its stream allows."""
        alerts: list[Alert] = []
        for stream, state in self._states.items():
            n = len(state.slots)
            if n == 0:
                continue
            limit = self._missed * state.interval_s + self._grace_s
            horizon = float(self._horizon.at(now, limit))
            # The arrays grow in steps; only the first n rows belong to devices.
            silent = np.flatnonzero(((horizon - state.last_seen[:n]) > limit) & ~state.alerted[:n])
            state.alerted[silent] = True
            for slot in silent.tolist():
                device_id = state.slots.ids[slot]
                if self._places.is_revoked(device_id):
                    continue
                alerts.append(self._alert(stream, state, slot, limit, horizon, now))
        return alerts

    def _alert(
        self, stream: str, state: _StreamState, slot: int, limit: float, horizon: float, now: float
    ) -> Alert:
        device_id = state.slots.ids[slot]
        place = self._places.of(stream, device_id)
        silent_for = horizon - float(state.last_seen[slot])
        last_ts = float(state.last_ts[slot])
        return alert(
            detector=self.name,
            kind="device_silent",
            severity=Severity.MEDIUM,
            title=(
                f"No reading from {place.name} for {silent_for:.0f} s "
                f"(it reports every {state.interval_s:g} s)"
            ),
            explanation=explain(
                seen=f"Nothing has been received from {place.name} for {figure(silent_for, 0)} s",
                against=(
                    f"while it reports every {figure(state.interval_s)} s and "
                    f"{figure(limit, 1)} s of silence ({figure(self._missed)} missed reports "
                    "plus a grace period) is the limit"
                ),
                sure=(
                    f"Sure that it is silent ({figure(silent_for / limit, 1)} times the limit), "
                    "not why: a cut cable, a jammer, a flat battery or a network fault"
                ),
                detector=self.name,
                score=silent_for / limit,
            ),
            stream=stream,
            device_id=device_id,
            place=place,
            ts=last_ts,
            now=now,
            evidence={
                "silent_for_s": number(silent_for),
                "threshold_s": limit,
                "report_interval_s": state.interval_s,
                "last_received_at": number(state.last_seen[slot]),
                "score": number(silent_for / limit),
                "readings": [
                    {"seq": int(state.last_seq[slot]), "ts": number(last_ts), "values": {}}
                ],
            },
        )

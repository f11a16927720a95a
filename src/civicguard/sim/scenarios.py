"""Scripted incidents and attacks, injected into the simulated city's traffic on a schedule.

The schedule follows from the seed and the run's length: after a warm-up the scenarios are
spread evenly so that every one ends before the run does; a run without an end repeats the
cycle. Each scenario touches one device and records when it really began and ended, so that
the demo can tell which alerts it explains.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from civicguard.sim.city import SimulatedCity


class ScenarioKind(StrEnum):
    """The scripted scenarios the demo city plays."""

    SUBSTATION_ATTACK = "substation_attack"
    TANK_SPOOFING = "tank_spoofing"
    DOOR_FORCED_AFTER_HOURS = "door_forced_after_hours"
    CROWD_SURGE = "crowd_surge"
    MESSAGE_FLOOD = "message_flood"
    DEVICE_SILENT = "device_silent"
    REPLAYED_MESSAGE = "replayed_message"
    #: Played only when scripted (tests, ``bench surge``): they need minutes or a given hour.
    DOOR_HELD_OPEN = "door_held_open"
    RESTRICTED_ENTRY = "restricted_entry"
    CROWD_BUILD_UP = "crowd_build_up"


#: Per kind: the streams its device may come from, and how long it lasts at most (s).
SCRIPT: dict[ScenarioKind, tuple[tuple[str, ...], float]] = {
    ScenarioKind.SUBSTATION_ATTACK: (("power.substation",), 20.0),
    ScenarioKind.TANK_SPOOFING: (("water.tank",), 25.0),
    ScenarioKind.DOOR_FORCED_AFTER_HOURS: (("access.door",), 10.0),
    ScenarioKind.CROWD_SURGE: (("crowd.counter",), 20.0),
    ScenarioKind.MESSAGE_FLOOD: (("air.quality", "traffic.counter"), 10.0),
    ScenarioKind.DEVICE_SILENT: (("traffic.counter", "air.quality", "water.pump"), 20.0),
    ScenarioKind.REPLAYED_MESSAGE: (("water.pump", "power.substation", "air.quality"), 0.0),
    ScenarioKind.DOOR_HELD_OPEN: (("access.door",), 60.0),
    ScenarioKind.RESTRICTED_ENTRY: (("access.door",), 5.0),
    ScenarioKind.CROWD_BUILD_UP: (("crowd.counter",), 1800.0),
}
#: Detectors that judge a reading's values: its band, its rate of change, its anomaly against
#: the stream's history or pattern, the catalog's rules.
VALUE_DETECTORS = frozenset(
    {"normal_band", "rate_of_change", "streaming_anomaly", "pattern_anomaly", "rules"}
)
#: Per kind, the detectors whose alerts count as detecting it. A silence or flood alert on a
#: substation under attack is not a detection of the attack: it says something else happened.
DETECTED_BY: dict[ScenarioKind, frozenset[str]] = {
    ScenarioKind.SUBSTATION_ATTACK: VALUE_DETECTORS,
    ScenarioKind.TANK_SPOOFING: VALUE_DETECTORS,
    ScenarioKind.CROWD_SURGE: VALUE_DETECTORS | {"crowd_capacity", "surge_forecast"},
    ScenarioKind.DOOR_FORCED_AFTER_HOURS: frozenset({"rules", "restricted_zone"}),
    ScenarioKind.MESSAGE_FLOOD: frozenset({"flood"}),
    ScenarioKind.DEVICE_SILENT: frozenset({"silence"}),
    ScenarioKind.REPLAYED_MESSAGE: frozenset({"replay"}),
    ScenarioKind.DOOR_HELD_OPEN: frozenset({"door_held_open"}),
    ScenarioKind.RESTRICTED_ENTRY: frozenset({"restricted_zone"}),
    ScenarioKind.CROWD_BUILD_UP: frozenset({"surge_forecast", "crowd_capacity"}),
}
#: Scenarios the demo's schedule leaves out: a held door needs longer than a short demo, an
#: entry after hours needs the night, a build-up takes many minutes.
SCRIPTED_ONLY = frozenset(
    {ScenarioKind.DOOR_HELD_OPEN, ScenarioKind.RESTRICTED_ENTRY, ScenarioKind.CROWD_BUILD_UP}
)
#: The kinds one cycle of the demo's schedule plays.
CYCLE_KINDS = tuple(k for k in ScenarioKind if k not in SCRIPTED_ONLY)

WARM_UP_S = 15.0
#: Time left after the last scenario for its alerts to arrive.
TAIL_S = 6.0
#: Spacing of scenarios in a run without an end.
OPEN_ENDED_GAP_S = 30.0
#: Shortest useful scenario when the run is too short for the scripted length.
MIN_DURATION_S = 4.0
#: A replayed message was captured at least this many messages earlier (beyond the window).
REPLAY_DEPTH = 40
FLOOD_RATE = 50
CROWD_GROWTH = 1.15
CROWD_PEAK = 130.0
#: Shares of a build-up's duration spent filling, holding at the peak, then emptying.
BUILD_UP_RISE = 0.6
BUILD_UP_HOLD = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedScenario:
    """One scenario on the schedule: what, on which device, when (s after start), how long."""

    kind: ScenarioKind
    device_id: str
    at: float
    duration: float
    #: Occupancy (%) a crowd build-up peaks at; ``None`` for other kinds.
    peak: float | None = None

    @property
    def until(self) -> float:
        """Seconds after start when the scenario stops."""
        return self.at + self.duration


@dataclass(slots=True)
class ScenarioRecord:
    """What happened to a planned scenario: wall-clock start and end once it ran."""

    plan: PlannedScenario
    started_at: float | None = None
    ended_at: float | None = None


def plan_cycle(
    city: SimulatedCity, seed: int, duration: float | None, cycle: int = 0
) -> list[PlannedScenario]:
    """The scenarios of one cycle, ordered by start time (the replay always comes last)."""
    rng = np.random.default_rng([seed, cycle, 7])
    kinds = [k for k in CYCLE_KINDS if k is not ScenarioKind.REPLAYED_MESSAGE]
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    # The replay needs REPLAY_DEPTH messages of history from its device first.
    order.append(ScenarioKind.REPLAYED_MESSAGE)
    if duration is None:
        gap = OPEN_ENDED_GAP_S
        origin = WARM_UP_S + cycle * gap * len(order)
        end = None
    else:
        warm = min(WARM_UP_S, duration / 4)
        gap = max(0.0, (duration - warm - TAIL_S) / len(order))
        origin = warm
        end = duration - TAIL_S
    taken: set[str] = set()
    plans: list[PlannedScenario] = []
    for slot, kind in enumerate(order):
        streams, longest = SCRIPT[kind]
        stream = streams[int(rng.integers(0, len(streams)))]
        choices = [d.id for d in city.of_stream(stream) if d.id not in taken]
        device_id = choices[int(rng.integers(0, len(choices)))]
        taken.add(device_id)
        at = origin + slot * gap
        if kind is ScenarioKind.REPLAYED_MESSAGE:
            # Its device is recorded from the moment the cycle is planned (run start at first).
            at = max(at, REPLAY_DEPTH + 2.0)
        length = longest
        if end is not None and longest > 0:
            length = max(MIN_DURATION_S, min(longest, end - at))
        plans.append(PlannedScenario(kind=kind, device_id=device_id, at=round(at, 3),
                                     duration=round(length, 3)))  # fmt: skip
    return plans


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One message the city sends: the device and the exact bytes on the wire."""

    device_id: str
    body: bytes


class ScenarioPlayer:
    """Turns one tick of the city's readings into messages, with the scenarios woven in."""

    def __init__(
        self,
        city: SimulatedCity,
        seed: int,
        duration: float | None,
        *,
        plans: Sequence[PlannedScenario] | None = None,
    ) -> None:
        """Play the seed's schedule for ``duration``, or exactly ``plans`` when given."""
        self.city = city
        self.seed = seed
        self.duration = duration
        self.records: list[ScenarioRecord] = []
        self._pending: deque[PlannedScenario] = deque()
        self._cycle = 0
        self._active: list[ScenarioRecord] = []
        self._state: dict[int, Any] = {}
        #: Messages overheard from devices a replay will target (an attacker on the network).
        self._captured: dict[str, deque[bytes]] = {}
        self._scripted = plans is not None
        self._plan_next_cycle(plans)

    def _plan_next_cycle(self, plans: Sequence[PlannedScenario] | None = None) -> None:
        if plans is None:
            # A given script plays once, and so does a run with an end.
            if self._scripted or (self.duration is not None and self._cycle > 0):
                return
            plans = plan_cycle(self.city, self.seed, self.duration, self._cycle)
        for plan in sorted(plans, key=lambda p: p.at):
            if self.duration is not None and plan.at >= self.duration:
                continue
            self._pending.append(plan)
            if plan.kind is ScenarioKind.REPLAYED_MESSAGE:
                self._captured[plan.device_id] = deque(maxlen=REPLAY_DEPTH * 2)
        self._cycle += 1

    def step(
        self, elapsed: float, now: float, readings: dict[str, dict[str, Any]]
    ) -> list[Outgoing]:
        """Messages for one tick ``elapsed`` s into the run, at wall-clock ``now``."""
        while self._pending and self._pending[0].at <= elapsed + 1e-6:
            record = ScenarioRecord(plan=self._pending.popleft(), started_at=now)
            self.records.append(record)
            self._active.append(record)
            if not self._pending:
                self._plan_next_cycle()
        muted: set[str] = set()
        flooding: list[str] = []
        extra: list[Outgoing] = []
        for record in list(self._active):
            plan = record.plan
            if plan.duration > 0 and elapsed >= plan.until - 1e-6:
                record.ended_at = now
                self._active.remove(record)
                self._state.pop(id(record), None)
                continue
            if plan.kind is ScenarioKind.MESSAGE_FLOOD:
                flooding.append(plan.device_id)
            if self._apply(record, now, readings.get(plan.device_id), muted, extra):
                record.ended_at = now
                self._active.remove(record)
        out: list[Outgoing] = []
        for device_id, values in readings.items():
            if device_id in muted:
                continue
            body = self.city.envelope(device_id, now, values)
            out.append(Outgoing(device_id=device_id, body=body))
            if device_id in self._captured:
                self._captured[device_id].append(body)
        for device_id in flooding:
            if device_id not in readings:
                continue
            values = readings[device_id]
            # The regular reading went out above; these are the extra ones, numbered in order.
            for j in range(1, FLOOD_RATE):
                body = self.city.envelope(device_id, now + j / FLOOD_RATE, values)
                out.append(Outgoing(device_id=device_id, body=body))
        out.extend(extra)
        return out

    def finish(self, now: float) -> None:
        """Close the records of scenarios still running when the run ends."""
        for record in self._active:
            record.ended_at = now
        self._active.clear()

    def _apply(
        self,
        record: ScenarioRecord,
        now: float,
        values: dict[str, Any] | None,
        muted: set[str],
        extra: list[Outgoing],
    ) -> bool:
        """Alter this tick for ``record``'s scenario; True when the scenario is over."""
        plan = record.plan
        kind = plan.kind
        key = id(record)
        if kind is ScenarioKind.REPLAYED_MESSAGE:
            history = self._captured.get(plan.device_id, deque())
            if len(history) <= REPLAY_DEPTH:
                return False  # keep listening until a message old enough was captured
            extra.append(Outgoing(device_id=plan.device_id, body=history[-REPLAY_DEPTH - 1]))
            record.started_at = now  # injected only now, once enough was overheard
            return True
        if kind is ScenarioKind.DEVICE_SILENT:
            muted.add(plan.device_id)
            return False
        if values is None:
            return False
        if kind is ScenarioKind.SUBSTATION_ATTACK:
            # Tripping protection relays: frequency and voltage far beyond the grid code.
            values["frequency"] = round(51.2 + 0.02 * ((now * 7.3) % 1 - 0.5), 3)
            values["voltage"] = round(12.6 + 0.04 * ((now * 3.1) % 1 - 0.5), 3)
        elif kind is ScenarioKind.TANK_SPOOFING:
            # A spoofed PLC: one jump, then a level that never moves again.
            frozen = self._state.setdefault(key, min(11.9, float(values["level"]) + 3.0))
            values["level"] = frozen
        elif kind is ScenarioKind.DOOR_FORCED_AFTER_HOURS:
            values["open"] = True
            values["access_granted"] = False
        elif kind in (ScenarioKind.DOOR_HELD_OPEN, ScenarioKind.RESTRICTED_ENTRY):
            # A badge opens the door (granted); what matters is how long, or at what hour.
            values["open"] = True
            values["access_granted"] = True
        elif kind is ScenarioKind.CROWD_BUILD_UP:
            before = float(values["occupancy"])
            start = self._state.setdefault(key, before)
            share = build_up_share((now - (record.started_at or now)) / max(plan.duration, 1e-6))
            level = before + (float(plan.peak or CROWD_PEAK) - start) * share
            values["occupancy"] = round(level, 3)
            values["people"] = round(int(values["people"]) * level / max(before, 1e-6))
        elif kind is ScenarioKind.CROWD_SURGE:
            before = float(values["occupancy"])
            level = self._state.get(key)
            level = max(before, 38.0) if level is None else min(CROWD_PEAK, level * CROWD_GROWTH)
            self._state[key] = level
            values["occupancy"] = round(level, 3)
            values["people"] = round(int(values["people"]) * level / max(before, 1e-6))
        return False


def build_up_share(progress: float) -> float:
    """How far (0-1) a crowd build-up has filled its zone at ``progress`` (0-1) of its run.

    It fills smoothly (slow, faster, slow), holds at the peak, then empties smoothly.

    >>> [round(build_up_share(u), 2) for u in (0.0, 0.3, 0.6, 0.7, 0.9, 1.0)]
    [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]
    """
    u = min(max(progress, 0.0), 1.0)
    if u < BUILD_UP_RISE:
        x = u / BUILD_UP_RISE
    elif u < BUILD_UP_RISE + BUILD_UP_HOLD:
        return 1.0
    else:
        x = (1.0 - u) / (1.0 - BUILD_UP_RISE - BUILD_UP_HOLD)
    return x * x * (3 - 2 * x)

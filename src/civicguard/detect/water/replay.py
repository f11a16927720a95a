"""Replay detection: a tag whose recent readings repeat an earlier stretch verbatim.

An attacker who conceals a tank or a pump replays readings recorded earlier. Real sensors
never repeat a varying stretch of readings exactly, hour after hour, at the same lag; a
replayed tag does, for as long as the replay lasts. Per tag we keep every past window of
``width`` readings (at the SCADA's resolution) and count for how many consecutive hours the
newest window has matched an earlier one at the same lag. Windows that barely vary (a pump
at rest, a tank that does not move) repeat by nature and are not looked at. Each tag's longest
such run in normal operation sets how long a run it takes to be suspicious. Flat windows
(too few distinct readings) are skipped without breaking a run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

#: Readings per compared window.
WIDTH = 4
#: Distinct values a window needs to count as varying.
MIN_DISTINCT = 3
#: SCADA resolution: readings are compared after rounding to this many decimals.
DECIMALS = 2


@dataclass(slots=True)
class _TagMemory:
    """What one tag's replay check carries: recent readings, past windows, the current run."""

    recent: deque[int]
    #: Window contents -> hour indices at which that window ended.
    seen: dict[tuple[int, ...], list[int]] = field(default_factory=dict)
    #: Lags at which the newest window repeated an earlier one.
    lags: set[int] = field(default_factory=set)
    run: int = 0


class ReplayTracker:
    """Streams rows and reports, per tracked tag, how long it has been repeating itself."""

    def __init__(self, tags: tuple[int, ...], width: int = WIDTH) -> None:
        self.tags = tags
        self.width = width
        self._hour = 0
        self._memory = [_TagMemory(recent=deque(maxlen=width)) for _ in tags]

    def push(self, row: np.ndarray) -> np.ndarray:
        """Take one hour's row; return per tag the hours of the current verbatim repeat."""
        out = np.zeros(len(self.tags))
        for k, j in enumerate(self.tags):
            mem = self._memory[k]
            mem.recent.append(round(float(row[j]) * 10**DECIMALS))
            if len(mem.recent) < self.width or len(set(mem.recent)) < MIN_DISTINCT:
                # A flat window proves nothing either way: a replay resumes after it at the
                # same lag, so its run is kept (but not reported).
                continue
            window = tuple(mem.recent)
            earlier = mem.seen.setdefault(window, [])
            lags = {self._hour - h for h in earlier}
            earlier.append(self._hour)
            # A replay keeps its lag: the stretch repeats as a whole, not by coincidence.
            steady = {lag for lag in lags if lag in mem.lags}
            if steady:
                mem.run += 1
                mem.lags = steady
            elif lags:
                mem.run = 1
                mem.lags = lags
            else:
                mem.run, mem.lags = 0, set()
            out[k] = mem.run
        self._hour += 1
        return out


def replay_runs(values: np.ndarray, tags: tuple[int, ...], width: int = WIDTH) -> np.ndarray:
    """(n, tags) repeat runs of a whole table, as a stream starting at its first row would."""
    tracker = ReplayTracker(tags, width)
    return np.array([tracker.push(row) for row in values]).reshape(len(values), len(tags))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayLimits:
    """Per tracked tag, the longest verbatim-repeat run seen in normal operation."""

    tags: tuple[int, ...]
    longest: np.ndarray

    @classmethod
    def learn(cls, normal: np.ndarray, columns: tuple[str, ...]) -> ReplayLimits:
        """Track every measured tag (levels, flows, pressures) and learn its normal runs."""
        tags = tuple(j for j, c in enumerate(columns) if c[:2] in ("L_", "F_", "P_"))
        runs = replay_runs(normal, tags)
        longest = runs.max(axis=0) if len(runs) else np.zeros(len(tags))
        return cls(tags=tags, longest=longest)

    def scores(self, runs: np.ndarray) -> np.ndarray:
        """Runs scaled so that one hour beyond the longest normal run scores above 1."""
        scaled: np.ndarray = runs / (self.longest + 0.5)
        return scaled

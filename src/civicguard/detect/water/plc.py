"""A pump's state against its PLC's memory: hysteresis control on a tank level.

A PLC switches a pump off when its tank rises above one level and on again only when it falls
below another. In between, the pump keeps whatever state it had, so a pump found running at a
level inside the band is legitimate only if it was started at a low level since it was last
stopped. Replaying the level, or holding it low, keeps each reading plausible on its own but
breaks that memory: the pump runs on after the level it reports already passed the stop
level. The levels are learned from normal operation (the hard limits: the highest level ever
seen with the pump on and the lowest with it off; the switching levels: where it was seen
starting and stopping), with the tanks and pumps paired by ``[CONTROLS]`` in the EPANET file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from civicguard.detect.water.network import WaterNetwork

#: Hours of normal operation a pump needs in each state, and switches in each direction,
#: before its control band is learned.
MIN_HOURS_EACH = 24
MIN_SWITCHES = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlBand:
    """One pump's learned control band on one tank's level (m)."""

    link: str
    status: int
    level: int
    #: Above this the pump is never on; below ``lowest_off`` never off.
    highest_on: float
    lowest_off: float
    #: The pump starts only at or below ``starts_below``, stops only at or above ``stops_above``
    #: (judged on the higher or lower of two consecutive hourly readings, since the level may
    #: cross a switching level between two readings).
    starts_below: float
    stops_above: float


def learn_bands(
    network: WaterNetwork, columns: tuple[str, ...], normal: np.ndarray
) -> tuple[ControlBand, ...]:
    """The control band of every pump or valve whose tank ``[CONTROLS]`` names."""
    col = {c: i for i, c in enumerate(columns)}
    bands: list[ControlBand] = []
    for link, tank in dict.fromkeys((c.link, c.tank) for c in network.controls):
        if f"S_{link}" not in col or f"L_{tank}" not in col:
            continue
        on = normal[:, col[f"S_{link}"]] > 0.5
        level = normal[:, col[f"L_{tank}"]]
        starts = np.flatnonzero(~on[:-1] & on[1:]) + 1
        stops = np.flatnonzero(on[:-1] & ~on[1:]) + 1
        if min(on.sum(), (~on).sum()) < MIN_HOURS_EACH or min(len(starts), len(stops)) < (
            MIN_SWITCHES
        ):
            continue
        bands.append(
            ControlBand(
                link=link,
                status=col[f"S_{link}"],
                level=col[f"L_{tank}"],
                highest_on=float(level[on].max()),
                lowest_off=float(level[~on].min()),
                starts_below=float(np.minimum(level[starts], level[starts - 1]).max()),
                stops_above=float(np.maximum(level[stops], level[stops - 1]).min()),
            )
        )
    return tuple(bands)


class ControlTracker:
    """Follows the state each PLC should hold and reports pumps that contradict it."""

    def __init__(self, bands: tuple[ControlBand, ...], margin: float) -> None:
        self.bands = bands
        self.margin = margin
        #: Per band: the state the PLC must be in (None until a hard limit tells).
        self._expected: list[bool | None] = [None] * len(bands)
        self._prev: np.ndarray | None = None

    def _may_switch(self, band: ControlBand, on: bool, low: float, high: float) -> bool:
        # A switch is legitimate where normal operation was seen to switch.
        if on:
            return low <= band.starts_below + self.margin
        return high >= band.stops_above - self.margin

    def push(self, row: np.ndarray) -> np.ndarray:
        """Take one hour's row; return 1 per band whose pump contradicts its PLC's state."""
        out = np.zeros(len(self.bands))
        prev = row if self._prev is None else self._prev
        for k, b in enumerate(self.bands):
            on = bool(row[b.status] > 0.5)
            level = float(row[b.level])
            low, high = min(level, float(prev[b.level])), max(level, float(prev[b.level]))
            expected = self._expected[k]
            if level > b.highest_on + self.margin:
                expected = False
            elif level < b.lowest_off - self.margin:
                expected = True
            elif expected is not None and on != expected and self._may_switch(b, on, low, high):
                expected = on
            self._expected[k] = expected
            out[k] = float(expected is not None and on != expected)
        self._prev = row
        return out


def band_breaches(values: np.ndarray, bands: tuple[ControlBand, ...], margin: float) -> np.ndarray:
    """(n, bands) the tracker's verdicts over a whole table, as a stream would see them."""
    tracker = ControlTracker(bands, margin)
    return np.array([tracker.push(row) for row in values]).reshape(len(values), len(bands))

"""Wrong place: a device reporting from somewhere other than the site it was registered at.

Devices with a GNSS receiver send their position in the reading's envelope (see
:mod:`civicguard.ingest.position`). A device that reports from far from its registered site
has been moved, stolen, or its identity is used by another box; either way its readings no
longer describe the place the city thinks they do. On personal streams positions arrive cut to
the centre of their H3 cell, so the distance allowed grows by the cell's radius: the alert then
means that even the nearest point of the cell is too far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from civicguard.catalog.model import Catalog, Category
from civicguard.detect._support import (
    BoolArray,
    FloatArray,
    Places,
    explain,
    figure,
    group_starts,
    reading,
    reading_alert,
)
from civicguard.detect.base import Detector, SlotIndex, grow
from civicguard.detect.model import Alert, Severity
from civicguard.geo import distance_m
from civicguard.ingest.model import Device, ReadingBatch
from civicguard.ingest.position import cell_radius_m


@dataclass(kw_only=True)
class _StreamState:
    #: Distance allowed from the registered site, metres (cell radius added when generalised).
    allowed_m: float
    #: Positions arrive generalised to cells (personal streams).
    generalised: bool
    #: Far readings in a row, per device.
    streak: FloatArray = field(default_factory=lambda: np.zeros(0))
    alerted: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    slots: SlotIndex = field(default_factory=SlotIndex)


class WrongPlaceDetector(Detector):
    """Alerts once per episode when ``consecutive`` positions in a row of a device lie further
    than ``max_distance_m`` from its registered site.

    Requiring a few positions in a row keeps a single multipath jump of a GNSS fix from
    alerting; a position back within the distance ends the episode. 200 m is several times the
    error of a consumer GNSS fix in a street canyon, and less than a city block's move.
    """

    name = "wrong_place"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        max_distance_m: float = 200.0,
        consecutive: int = 3,
    ) -> None:
        self._device = device
        self._places = Places(catalog, device)
        self.max_distance_m = max_distance_m
        self.consecutive = consecutive
        self._states: dict[str, _StreamState] = {}
        for stream in catalog.streams:
            generalised = stream.category is not Category.NON_PERSONAL
            extra = cell_radius_m(stream.h3_resolution) if generalised else 0.0
            self._states[stream.name] = _StreamState(
                allowed_m=max_distance_m + extra, generalised=generalised
            )

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Compare each reported position with its device's registered site."""
        state = self._states.get(batch.stream)
        positions = batch.positions
        if state is None or positions is None or len(batch) == 0:
            return []
        rows = np.flatnonzero(~np.isnan(positions).any(axis=1))
        if len(rows) == 0:
            return []
        sites: dict[str, tuple[float, float]] = {}
        for device_id in {batch.device_ids[i] for i in rows.tolist()}:
            device = self._device(device_id)
            # A device the registry no longer knows has no site to compare with.
            if device is not None:
                sites[device_id] = (device.lat, device.lon)
        rows = np.array([i for i in rows.tolist() if batch.device_ids[i] in sites], dtype=np.intp)
        if len(rows) == 0:
            return []
        ids = [batch.device_ids[i] for i in rows.tolist()]
        site = np.array([sites[d] for d in ids], dtype=np.float64)
        away = distance_m(site[:, 0], site[:, 1], positions[rows, 0], positions[rows, 1])
        slots = state.slots.lookup(ids)
        state.streak = grow(state.streak, len(state.slots), 0.0)
        state.alerted = grow(state.alerted, len(state.slots), False)
        order = np.lexsort((batch.ts[rows], slots))
        alerts: list[Alert] = []
        starts = np.flatnonzero(group_starts(slots[order]))
        for group in np.split(order, starts[1:]):
            slot = int(slots[group[0]])
            alerts.extend(self._device_run(state, batch, rows[group], slot, away[group], now))
        return alerts

    def _device_run(
        self,
        state: _StreamState,
        batch: ReadingBatch,
        rows: np.ndarray,
        slot: int,
        away: FloatArray,
        now: float,
    ) -> list[Alert]:
        """One device's positions in time order: update its streak, alert when it completes."""
        far = away > state.allowed_m
        streak = int(state.streak[slot])
        alerts: list[Alert] = []
        for i, is_far in enumerate(far.tolist()):
            if not is_far:
                streak = 0
                state.alerted[slot] = False
                continue
            streak += 1
            if streak >= self.consecutive and not state.alerted[slot]:
                state.alerted[slot] = True
                alerts.append(self._alert(state, batch, int(rows[i]), float(away[i]), now))
        state.streak[slot] = streak
        return alerts

    def _alert(
        self, state: _StreamState, batch: ReadingBatch, row: int, away: float, now: float
    ) -> Alert:
        device_id = batch.device_ids[row]
        place = self._places.of(batch.stream, device_id, batch.cells[row])
        assert batch.positions is not None
        lat, lon = (float(v) for v in batch.positions[row])
        score = away / state.allowed_m
        where = "its cell's centre is" if state.generalised else "it is"
        reported: dict[str, object] = (
            {"reported_cell_centre": [lat, lon]} if state.generalised else {"reported": [lat, lon]}
        )
        return reading_alert(
            self.name,
            batch,
            row,
            place,
            now,
            kind="wrong_place",
            severity=Severity.HIGH,
            title=f"{place.name} reports from {away:.0f} m away from its registered site",
            explanation=explain(
                seen=(
                    f"{place.name} reported its own position {self.consecutive} times in a "
                    f"row away from its registered site; {where} {figure(away, 0)} m away"
                ),
                against=(
                    f"while {figure(state.allowed_m, 0)} m is allowed "
                    + (
                        f"({figure(self.max_distance_m, 0)} m plus the radius of the cell the "
                        "position was cut to)"
                        if state.generalised
                        else "for GNSS error"
                    )
                ),
                sure=(
                    f"Sure that the reported place is wrong ({figure(score, 1)} times the "
                    "allowed distance): the device was moved, or another device uses its "
                    "identity"
                ),
                detector=self.name,
                score=score,
            ),
            evidence={
                "registered": [place.lat, place.lon],
                **reported,
                "distance_m": away,
                "allowed_m": state.allowed_m,
                "max_distance_m": self.max_distance_m,
                "consecutive": self.consecutive,
                "score": score,
                "readings": [reading(batch, row)],
            },
        )

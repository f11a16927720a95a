"""Where a device says it is: the optional ``position`` of a reading's envelope.

A device with a GNSS receiver may add ``"position": {"lat": 21.88, "lon": -102.29}`` to a
reading. The position is the device's own, not a reading's subject's (a reading's place, for
streams whose readings carry one, is the catalog's ``location`` fields, which the privacy
gateway turns into a cell). Positions travel beside the batch (``ReadingBatch.positions``) so
that the wrong-place detector can compare them with the registered site; they are never
stored. The privacy gateway cuts positions on personal streams to the centre of their H3 cell
(:func:`generalise`): a device on such a stream may be carried by a person.
"""

from __future__ import annotations

import math

import h3
import numpy as np

from civicguard.ingest.model import FloatArray, Reason


def parse_position(value: object) -> tuple[float, float] | tuple[Reason, str]:
    """(lat, lon) from an envelope ``position``, or (reason, detail) saying what is wrong.

    >>> parse_position({"lat": 21.88, "lon": -102.29})
    (21.88, -102.29)
    >>> parse_position({"lat": 95, "lon": 0})[1]
    'position.lat: 95 is outside [-90, 90]'
    """
    if not isinstance(value, dict) or value.keys() != {"lat", "lon"}:
        return Reason.WRONG_TYPE, 'position: expected {"lat": <degrees>, "lon": <degrees>}'
    out = []
    for name, limit in (("lat", 90.0), ("lon", 180.0)):
        v = value[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return Reason.WRONG_TYPE, f"position.{name}: expected a finite number of degrees"
        if not -limit <= v <= limit:
            return Reason.OUT_OF_RANGE, f"position.{name}: {v:g} is outside [{-limit:g}, {limit:g}]"
        out.append(float(v))
    return out[0], out[1]


def generalise(positions: FloatArray, resolution: int) -> FloatArray:
    """Each position moved to the centre of its H3 cell at ``resolution`` (NaN rows stay)."""
    out = np.full_like(positions, np.nan)
    for i in np.flatnonzero(~np.isnan(positions[:, 0])).tolist():
        cell = h3.latlng_to_cell(float(positions[i, 0]), float(positions[i, 1]), resolution)
        out[i] = h3.cell_to_latlng(cell)
    return out


def cell_radius_m(resolution: int) -> float:
    """The distance from an H3 cell's centre to its corners, on average, at ``resolution``."""
    # A regular hexagon's circumradius equals its edge length.
    return float(h3.average_hexagon_edge_length(resolution, unit="m"))

"""Splitting the street network into named districts (k-means on node coordinates)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from civicguard.respond.streets import StreetNetwork

#: Compass sectors, clockwise from north, that name the districts around the centre.
_SECTORS = (
    "Norte", "Nororiente", "Oriente", "Suroriente", "Sur", "Surponiente", "Poniente", "Norponiente",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class District:
    """A named part of the city and the street nodes in it."""

    name: str
    lat: float
    lon: float
    nodes: tuple[int, ...]


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, rounds: int = 30) -> np.ndarray:
    """Lloyd's k-means; returns each point's cluster label."""
    centres = points[rng.choice(len(points), size=k, replace=False)]
    labels = np.zeros(len(points), dtype=np.intp)
    for _ in range(rounds):
        dist = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        if _ and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = points[labels == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    return labels


def split_districts(streets: StreetNetwork, count: int = 6, seed: int = 0) -> tuple[District, ...]:
    """``count`` districts of ``streets``: the one nearest the middle is ``Centro``, the rest
    are named by compass direction from it. The same network and seed give the same split.
    """
    ids, lat, lon = streets.node_coordinates()
    count = max(1, min(count, len(ids)))
    scale = math.cos(math.radians(float(lat.mean())))
    points = np.column_stack([lat, lon * scale])
    labels = _kmeans(points, count, np.random.default_rng(seed))
    clusters = [np.flatnonzero(labels == j) for j in range(count)]
    clusters = [c for c in clusters if len(c)]
    centres = [(float(lat[c].mean()), float(lon[c].mean())) for c in clusters]
    mid_lat, mid_lon = streets.bounds.centre
    centre_index = min(
        range(len(centres)),
        key=lambda j: (centres[j][0] - mid_lat) ** 2 + ((centres[j][1] - mid_lon) * scale) ** 2,
    )
    c_lat, c_lon = centres[centre_index]
    used: dict[str, int] = {}
    names: list[str] = []
    for j, (d_lat, d_lon) in enumerate(centres):
        if j == centre_index:
            names.append("Centro")
            continue
        bearing = math.degrees(math.atan2((d_lon - c_lon) * scale, d_lat - c_lat)) % 360
        base = _SECTORS[int(((bearing + 22.5) % 360) // 45)]
        used[base] = used.get(base, 0) + 1
        names.append(base if used[base] == 1 else f"{base} {used[base]}")
    districts = [
        District(
            name=names[j],
            lat=centres[j][0],
            lon=centres[j][1],
            nodes=tuple(int(n) for n in ids[c]),
        )
        for j, c in enumerate(clusters)
    ]
    return tuple(sorted(districts, key=lambda d: (d.name != "Centro", d.name)))

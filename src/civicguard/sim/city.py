"""The simulated city: its districts, its sensor fleet, and what every sensor says each tick.

Everything follows from the seed: the same seed gives the same devices in the same places and
the same readings at the same instants.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from civicguard.catalog.model import Catalog
from civicguard.ingest.model import Device
from civicguard.respond.streets import StreetNetwork
from civicguard.sim.devices import StreamSimulator, mac_pool, plate_pool
from civicguard.sim.districts import District, split_districts
from civicguard.sim.sites import counter_capacities, site_devices

#: How many devices of each stream the demo city runs, and the prefix of their ids.
FLEET: dict[str, tuple[str, int, str]] = {
    "power.substation": ("substation", 12, "Substation"),
    "water.tank": ("tank", 14, "Water tank"),
    "water.pump": ("pump", 16, "Pumping station"),
    "traffic.counter": ("traffic", 64, "Traffic counter"),
    "access.door": ("door", 52, "Door controller"),
    "crowd.counter": ("crowd", 30, "Crowd counter"),
    "air.quality": ("air", 36, "Air quality station"),
    "traffic.anpr": ("anpr", 42, "ANPR camera"),
    "presence.wifi": ("wifi", 42, "Wi-Fi presence counter"),
}


class SimulatedCity:
    """A deterministic city of devices placed on the street network's nodes, by district."""

    def __init__(
        self,
        *,
        seed: int,
        streets: StreetNetwork,
        catalog: Catalog,
        fleet: Mapping[str, tuple[str, int, str]] | None = None,
        district_count: int = 6,
    ) -> None:
        self.seed = seed
        self.streets = streets
        self.catalog = catalog
        # Districts depend on the map only, so they stay put whatever the seed.
        self.districts: tuple[District, ...] = split_districts(streets, district_count)
        seeds = np.random.SeedSequence(seed).spawn(2 + len(FLEET))
        place = np.random.default_rng(seeds[0])
        pools = np.random.default_rng(seeds[1])
        self.plates = plate_pool(pools)
        self.macs = mac_pool(pools)
        self.simulators: list[StreamSimulator] = []
        devices: list[Device] = []
        nodes = streets.graph.nodes
        for k, (stream_name, (prefix, count, title)) in enumerate((fleet or FLEET).items()):
            stream = catalog.stream(stream_name)
            mine: list[Device] = []
            for i in range(count):
                district = self.districts[(i + k) % len(self.districts)]
                node = district.nodes[int(place.integers(0, len(district.nodes)))]
                mine.append(
                    Device(
                        id=f"{prefix}-{i + 1:03d}",
                        stream=stream.name,
                        lat=round(float(nodes[node]["lat"]), 6),
                        lon=round(float(nodes[node]["lon"]), 6),
                        district=district.name,
                        label=f"{title} {i + 1}, {district.name}",
                    )
                )
            mine = site_devices(stream.name, mine, catalog, self.districts)
            devices.extend(mine)
            self.simulators.append(
                StreamSimulator(
                    stream,
                    mine,
                    np.random.default_rng(seeds[2 + k]),
                    plates=self.plates,
                    macs=self.macs,
                    capacity=counter_capacities(mine, catalog),
                )
            )
        self.devices: tuple[Device, ...] = tuple(devices)
        self._by_id = {d.id: d for d in devices}
        self._seq: dict[str, int] = dict.fromkeys(self._by_id, 0)
        self._next_due = [0.0] * len(self.simulators)

    def device(self, device_id: str) -> Device:
        """The device called ``device_id``; ``KeyError`` if the city has none."""
        return self._by_id[device_id]

    def of_stream(self, stream: str) -> list[Device]:
        """The city's devices on ``stream``, in id order."""
        return [d for d in self.devices if d.stream == stream]

    def resume(self, highest: Mapping[str, int]) -> None:
        """Continue each device's numbering after ``highest`` (what an earlier run reached)."""
        for device_id, seq in highest.items():
            if device_id in self._seq:
                self._seq[device_id] = max(self._seq[device_id], int(seq))

    def readings(self, ts: float) -> dict[str, dict[str, Any]]:
        """The values every device due at ``ts`` reports, by device id (no envelope yet)."""
        out: dict[str, dict[str, Any]] = {}
        for k, sim in enumerate(self.simulators):
            # Ticks come from a wall clock and jitter; half a second early still counts as due.
            if ts < self._next_due[k] - 0.5:
                continue
            self._next_due[k] = ts + sim.stream.report_interval_s
            for device, values in zip(sim.devices, sim.tick(ts), strict=True):
                out[device.id] = values
        return out

    def envelope(self, device_id: str, ts: float, values: Mapping[str, Any]) -> bytes:
        """A wire-format reading of ``device_id`` with its next sequence number."""
        self._seq[device_id] += 1
        return orjson.dumps({"seq": self._seq[device_id], "ts": round(ts, 3), "values": values})

    def last_seq(self, device_id: str) -> int:
        """The sequence number of the device's latest envelope."""
        return self._seq[device_id]

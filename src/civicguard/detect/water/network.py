"""The water network's topology, read from an EPANET ``.inp`` file.

Only what attack detection needs: tanks (with their cross-section, so that a level change
becomes a volume), pumps and valves (which node they draw from and deliver to), pipes, and the
simple level controls (``LINK PU1 OPEN IF NODE T1 BELOW 4``) that say which tank a pump serves.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Tank:
    """A storage tank: where it sits, how tall and how wide it is."""

    id: str
    elevation: float
    max_level: float
    diameter: float

    @property
    def area(self) -> float:
        """Cross-section in m², from the diameter in metres."""
        return math.pi * self.diameter**2 / 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A pipe, pump or valve from ``start`` to ``end`` (the direction of pumped flow)."""

    id: str
    kind: str  # "pipe", "pump" or "valve"
    start: str
    end: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelControl:
    """``LINK <link> <action> IF NODE <tank> <BELOW|ABOVE> <level>``."""

    link: str
    opens: bool
    tank: str
    below: bool
    level: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WaterNetwork:
    """Tanks, links and controls of one network, with the hydraulic questions we ask of them."""

    tanks: tuple[Tank, ...]
    links: tuple[Link, ...]
    controls: tuple[LevelControl, ...]

    @property
    def pumps(self) -> tuple[Link, ...]:
        """The pumps, in file order."""
        return tuple(x for x in self.links if x.kind == "pump")

    @property
    def valves(self) -> tuple[Link, ...]:
        """The valves, in file order."""
        return tuple(x for x in self.links if x.kind == "valve")

    def tank(self, tank_id: str) -> Tank:
        """The tank called ``tank_id``."""
        return next(t for t in self.tanks if t.id == tank_id)

    def feeder_tank(self, link_id: str) -> str | None:
        """The tank a pump or valve fills.

        A level control names it directly (the pump that switches on ``T1``'s level fills
        ``T1``); otherwise it is the tank nearest the delivery side through pipes alone, since
        water pushed by a pump reaches another pump's zone only through that pump.
        """
        for control in self.controls:
            if control.link == link_id:
                return control.tank
        link = next(x for x in self.links if x.id == link_id)
        return self._nearest_tank(link.end)

    def feeders(self) -> dict[str, tuple[str, ...]]:
        """Per tank, the pumps and valves that fill it (mass balance inflows)."""
        out: dict[str, list[str]] = {t.id: [] for t in self.tanks}
        for link in self.links:
            if link.kind == "pipe":
                continue
            tank = self.feeder_tank(link.id)
            if tank is not None:
                out[tank].append(link.id)
        return {k: tuple(v) for k, v in out.items()}

    def _nearest_tank(self, node: str) -> str | None:
        tanks = {t.id for t in self.tanks}
        adjacency: dict[str, list[str]] = {}
        for link in self.links:
            if link.kind == "pipe":
                adjacency.setdefault(link.start, []).append(link.end)
                adjacency.setdefault(link.end, []).append(link.start)
        seen = {node}
        queue = deque([node])
        while queue:
            here = queue.popleft()
            if here in tanks:
                return here
            for nxt in adjacency.get(here, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return None


def _sections(text: str) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]").upper(), [])
            continue
        if current is not None:
            current.append(line.split())
    return sections


def _control(tokens: list[str]) -> LevelControl | None:
    words = [t.upper() for t in tokens]
    # Only the level form matters here; timed controls (AT TIME ...) say nothing of tanks.
    if len(words) < 8 or words[0] != "LINK" or "NODE" not in words:
        return None
    at = words.index("NODE")
    if at + 3 >= len(words) + 1 or words[at + 2] not in ("BELOW", "ABOVE"):
        return None
    return LevelControl(
        link=tokens[1],
        opens=words[2] == "OPEN",
        tank=tokens[at + 1],
        below=words[at + 2] == "BELOW",
        level=float(tokens[at + 3]),
    )


def parse_inp(text: str) -> WaterNetwork:
    """Parse the text of an EPANET ``.inp`` file.

    >>> net = parse_inp('''[TANKS]
    ...  T1 71.5 3 0 6.5 31.3 0 ;
    ... [PUMPS]
    ...  PU1 J1 J2 HEAD 8 ;
    ... [PIPES]
    ...  P1 J2 T1 10 200 100 0 Open ;
    ... [CONTROLS]
    ... LINK PU1 OPEN IF NODE T1 BELOW 4
    ... ''')
    >>> net.feeders()
    {'T1': ('PU1',)}
    """
    sections = _sections(text)
    tanks = tuple(
        Tank(id=r[0], elevation=float(r[1]), max_level=float(r[4]), diameter=float(r[5]))
        for r in sections.get("TANKS", [])
    )
    links: list[Link] = []
    for section, kind in (("PIPES", "pipe"), ("PUMPS", "pump"), ("VALVES", "valve")):
        links.extend(
            Link(id=r[0], kind=kind, start=r[1], end=r[2]) for r in sections.get(section, [])
        )
    controls = tuple(
        c for c in (_control(r) for r in sections.get("CONTROLS", [])) if c is not None
    )
    return WaterNetwork(tanks=tanks, links=tuple(links), controls=controls)


def load_inp(path: Path) -> WaterNetwork:
    """Read and parse an EPANET ``.inp`` file."""
    return parse_inp(path.read_text(encoding="utf-8", errors="replace"))

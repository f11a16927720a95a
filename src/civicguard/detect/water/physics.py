"""Physical consistency checks of a water network's hourly SCADA readings.

Four laws the readings must obey whatever the demand: a tank's level changes by what its
pumps and valves bring in and take out (mass balance, with the unmetered demand learned as a
daily pattern), a running pump's flow follows its curve against the head across its station
(a slowed pump delivers less at the same head), a pump that reports "off" carries no flow
(and one that is "on" carries some), and a pump's state follows its tank's level as the PLC's
control thresholds say.
All checks take the previous and the current rows, so live and batch share them exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from civicguard.detect.water.network import WaterNetwork

#: Below this flow (L/s) a link counts as carrying nothing; in normal data an open pump
#: carries 20 L/s or more and a closed one exactly 0.
NO_FLOW = 1.0


def day_shape(hours: np.ndarray, harmonics: int = 3) -> np.ndarray:
    """Daily demand regressors: sin/cos of the hour of day, and a constant."""
    angle = 2 * np.pi * hours[:, None] * np.arange(1, harmonics + 1)[None, :] / 24
    return np.hstack([np.sin(angle), np.cos(angle), np.ones((len(hours), 1))])


def hour_of_day(ts: np.ndarray) -> np.ndarray:
    """The hour of day (0-23) of Unix times, UTC."""
    return np.floor((ts % 86400) / 3600)


def ridge(x: np.ndarray, y: np.ndarray, penalty: float = 1e-3) -> np.ndarray:
    """Least-squares coefficients of ``y`` on ``x`` with a small ridge for collinear columns."""
    scale = np.sqrt((x**2).mean(axis=0)) + 1e-9
    xs = x / scale
    gram = xs.T @ xs + penalty * len(x) * np.eye(x.shape[1])
    beta: np.ndarray = np.linalg.solve(gram, xs.T @ y)
    unscaled: np.ndarray = beta / (scale[:, None] if y.ndim > 1 else scale)
    return unscaled


@dataclass(frozen=True, slots=True, kw_only=True)
class TankBalance:
    """One tank's mass balance: the links whose flows move its level, and the fitted law."""

    tank: str
    links: tuple[str, ...]
    coef: np.ndarray
    spread: float


def zone_links(network: WaterNetwork, tank: str) -> tuple[str, ...]:
    """Pumps and valves with a measured effect on ``tank``: those that fill its pressure zone,
    draw from it, or move water inside it (a zone is what pipes alone connect)."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.get(node, node) != node:
            node = parent[node]
        return node

    for link in network.links:
        if link.kind == "pipe":
            a, b = root(link.start), root(link.end)
            if a != b:
                parent[a] = b
    zone = root(tank)
    return tuple(
        link.id
        for link in network.links
        if link.kind != "pipe" and zone in (root(link.start), root(link.end))
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpCurve:
    """A pump's flow against its station's head, learned while it runs.

    A pump delivers a fixed flow for a given head (its curve); slowed down (a lower speed
    setting) it delivers less at the same head, which no reading of the pump alone reveals.
    """

    pump: str
    status: int
    flow: int
    suction: int
    discharge: int
    #: Status columns of the other pumps sharing the station (they shift the operating point).
    siblings: tuple[int, ...]
    coef: np.ndarray
    spread: float
    #: Whether normal operation ran it beside its siblings often enough to learn that regime.
    shared_known: bool = False


#: Hours of normal operation a pump needs in a regime (alone, or beside its station's other
#: pumps) before its curve there is trusted.
CURVE_HOURS = 48

#: How many pipes from a pump's inlet or outlet a pressure gauge may sit to count as its own.
STATION_REACH = 2


def nearest_gauge(network: WaterNetwork, node: str, gauges: set[str]) -> str | None:
    """The pressure-gauged junction nearest ``node`` through at most ``STATION_REACH`` pipes."""
    adjacency: dict[str, list[str]] = {}
    for link in network.links:
        if link.kind == "pipe":
            adjacency.setdefault(link.start, []).append(link.end)
            adjacency.setdefault(link.end, []).append(link.start)
    seen = {node}
    queue = deque([(node, 0)])
    while queue:
        here, hops = queue.popleft()
        if here in gauges:
            return here
        if hops == STATION_REACH:
            continue
        for nxt in adjacency.get(here, ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, hops + 1))
    return None


def pump_stations(network: WaterNetwork, columns: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Per pump with flow and status tags, its (suction, discharge) gauged junctions."""
    gauges = {c[2:] for c in columns if c.startswith("P_")}
    out: dict[str, tuple[str, str]] = {}
    for pump in network.pumps:
        if f"F_{pump.id}" not in columns or f"S_{pump.id}" not in columns:
            continue
        suction = nearest_gauge(network, pump.start, gauges)
        discharge = nearest_gauge(network, pump.end, gauges)
        if suction is not None and discharge is not None and suction != discharge:
            out[pump.id] = (suction, discharge)
    return out


def _curve_x(cur: np.ndarray, curve: PumpCurve) -> np.ndarray:
    head = cur[:, curve.discharge] - cur[:, curve.suction]
    return np.column_stack([head, head**2, np.ones(len(cur)), cur[:, list(curve.siblings)]])


def _beside(cur: np.ndarray, curve: PumpCurve) -> np.ndarray:
    """Rows where another pump of the station runs too."""
    if not curve.siblings:
        return np.zeros(len(cur), dtype=bool)
    beside: np.ndarray = np.any(cur[:, list(curve.siblings)] > 0.5, axis=1)
    return beside


class PhysicsModel:
    """Mass balance, status/flow and control-threshold checks for one network's SCADA tags."""

    def __init__(self, network: WaterNetwork, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self._col = {c: i for i, c in enumerate(columns)}
        self.balances: list[TankBalance] = []
        self._tank_links: dict[str, tuple[str, ...]] = {}
        for tank in network.tanks:
            if f"L_{tank.id}" not in self._col:
                continue
            links = tuple(x for x in zone_links(network, tank.id) if f"F_{x}" in self._col)
            self._tank_links[tank.id] = links
        #: (status column, flow column) per pump/valve that has both tags.
        self.pairs = tuple(
            (self._col[f"S_{x.id}"], self._col[f"F_{x.id}"], x.id)
            for x in (*network.pumps, *network.valves)
            if f"S_{x.id}" in self._col and f"F_{x.id}" in self._col
        )
        self._controls = tuple(
            (c.link, c.tank)
            for c in network.controls
            if f"S_{c.link}" in self._col and f"L_{c.tank}" in self._col
        )
        #: Per controlled link: (status col, level col, highest level seen on, lowest seen off).
        self.envelopes: list[tuple[int, int, float, float, str]] = []
        self._stations = pump_stations(network, columns)
        self.curves: list[PumpCurve] = []

    def _balance_x(
        self, prev: np.ndarray, cur: np.ndarray, hours: np.ndarray, tank: str
    ) -> np.ndarray:
        idx = [self._col[f"F_{x}"] for x in self._tank_links[tank]]
        return np.hstack([prev[:, idx], cur[:, idx], day_shape(hours)])

    def fit(self, prev: np.ndarray, cur: np.ndarray, hours: np.ndarray) -> None:
        """Learn each tank's balance and each control's level envelope from normal rows."""
        self.balances = []
        for tank, links in self._tank_links.items():
            x = self._balance_x(prev, cur, hours, tank)
            level = self._col[f"L_{tank}"]
            dl = cur[:, level] - prev[:, level]
            coef = ridge(x, dl)
            resid = dl - x @ coef
            spread = float(np.median(np.abs(resid)) * 1.4826) + 1e-6
            self.balances.append(TankBalance(tank=tank, links=links, coef=coef, spread=spread))
        self.envelopes = []
        for link, tank in dict.fromkeys(self._controls):
            s, lv = self._col[f"S_{link}"], self._col[f"L_{tank}"]
            on, off = cur[:, s] > 0.5, cur[:, s] <= 0.5
            if on.sum() < 24 or off.sum() < 24:
                continue  # a pump always on (or never) says nothing of its thresholds
            self.envelopes.append(
                (s, lv, float(cur[on, lv].max()), float(cur[off, lv].min()), link)
            )
        self._fit_curves(cur)

    def _fit_curves(self, cur: np.ndarray) -> None:
        self.curves = []
        for pump, (suction, discharge) in self._stations.items():
            on = cur[:, self._col[f"S_{pump}"]] > 0.5
            if on.sum() < CURVE_HOURS:
                continue  # a pump that hardly ran has no curve to learn
            siblings = tuple(
                self._col[f"S_{other}"]
                for other, ends in self._stations.items()
                if other != pump and ends == (suction, discharge)
            )
            curve = PumpCurve(
                pump=pump,
                status=self._col[f"S_{pump}"],
                flow=self._col[f"F_{pump}"],
                suction=self._col[f"P_{suction}"],
                discharge=self._col[f"P_{discharge}"],
                siblings=siblings,
                coef=np.zeros(0),
                spread=1.0,
            )
            x = _curve_x(cur[on], curve)
            coef = ridge(x, cur[on, curve.flow], penalty=1e-6)
            resid = cur[on, curve.flow] - x @ coef
            spread = float(np.median(np.abs(resid)) * 1.4826) + 0.01
            shared = int((on & _beside(cur, curve)).sum())
            self.curves.append(
                replace(curve, coef=coef, spread=spread, shared_known=shared >= CURVE_HOURS)
            )

    def curve_residuals(self, cur: np.ndarray) -> np.ndarray:
        """(n, pumps) flow off the pump's learned curve, in normal spreads (0 while it rests)."""
        out = np.zeros((len(cur), len(self.curves)))
        for k, c in enumerate(self.curves):
            on = cur[:, c.status] > 0.5
            if not c.shared_known:
                on &= ~_beside(cur, c)  # a regime normal operation hardly showed
            resid = (cur[:, c.flow] - _curve_x(cur, c) @ c.coef) / c.spread
            out[:, k] = np.where(on, resid, 0.0)
        return out

    def curve_names(self) -> list[str]:
        """The flow tag each pump-curve column speaks for."""
        return [f"F_{c.pump}" for c in self.curves]

    def balance_residuals(self, prev: np.ndarray, cur: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """(n, tanks) level change not explained by the flows, in units of the normal spread."""
        out = np.empty((len(cur), len(self.balances)))
        for k, b in enumerate(self.balances):
            level = self._col[f"L_{b.tank}"]
            dl = cur[:, level] - prev[:, level]
            out[:, k] = (dl - self._balance_x(prev, cur, hours, b.tank) @ b.coef) / b.spread
        return out

    def status_flow_breaches(self, cur: np.ndarray) -> np.ndarray:
        """(n, links) True where a link says off but carries flow, or on and carries none."""
        out = np.zeros((len(cur), len(self.pairs)), dtype=bool)
        for k, (s, f, _) in enumerate(self.pairs):
            on = cur[:, s] > 0.5
            flowing = cur[:, f] > NO_FLOW
            out[:, k] = on != flowing
        return out

    def control_breaches(self, cur: np.ndarray, margin: float) -> np.ndarray:
        """(n, controls) how far (m) a level lies outside what its pump's state allows.

        A pump seen on at a level higher than it ever ran in normal operation, or off at a level
        lower than it ever rested, breaks the PLC's thresholds; ``margin`` absorbs the hour
        between readings in which the level may cross a threshold before the switch.
        """
        out = np.zeros((len(cur), len(self.envelopes)))
        for k, (s, lv, hi_on, lo_off, _) in enumerate(self.envelopes):
            on = cur[:, s] > 0.5
            level = cur[:, lv]
            over = np.where(on, level - hi_on, lo_off - level) - margin
            out[:, k] = np.maximum(over, 0.0)
        return out

    def balance_names(self) -> list[str]:
        """The level tag each balance residual column speaks for."""
        return [f"L_{b.tank}" for b in self.balances]

    def pair_names(self) -> list[str]:
        """The link each status/flow column speaks for."""
        return [f"S_{name}" for *_, name in self.pairs]

    def control_names(self) -> list[str]:
        """The pump each control column speaks for."""
        return [f"S_{e[4]}" for e in self.envelopes]

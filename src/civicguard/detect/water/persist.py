"""A fitted water attack model saved to, and loaded from, one JSON file.

The file holds the network's topology, the SCADA tags, the settings and everything fitting
learned (laws, cross-checks, replay limits, control bands, thresholds), so that the live
pipeline loads in a second what took a year of readings to learn. JSON rather than pickle: a
model file is data, and loading it must never run code. Floats are written by ``repr`` and
read back bit for bit.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from civicguard.detect.water.detector import WatchSettings, WaterAttackModel
from civicguard.detect.water.network import LevelControl, Link, Tank, WaterNetwork
from civicguard.detect.water.physics import PumpCurve, TankBalance
from civicguard.detect.water.plc import ControlBand
from civicguard.detect.water.replay import ReplayLimits

#: Written into every file; a file of another format is refused rather than misread.
FORMAT = "civicguard.water-attack-model/1"


class ModelFileError(ValueError):
    """A model file that cannot be read: says which file and what is wrong with it."""


def _floats(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=float).ravel()]


def model_state(model: WaterAttackModel) -> dict[str, Any]:
    """Everything a fitted model holds, as JSON-ready data."""
    physics = model.physics
    return {
        "format": FORMAT,
        "network": {
            "tanks": [asdict(t) for t in model.network.tanks],
            "links": [asdict(x) for x in model.network.links],
            "controls": [asdict(c) for c in model.network.controls],
        },
        "columns": list(model.columns),
        "settings": asdict(model.settings),
        "balances": [
            {"tank": b.tank, "links": list(b.links), "coef": _floats(b.coef), "spread": b.spread}
            for b in physics.balances
        ],
        "envelopes": [list(e) for e in physics.envelopes],
        "curves": [
            {**asdict(c), "siblings": list(c.siblings), "coef": _floats(c.coef)}
            for c in physics.curves
        ],
        "cross": model.cross.learned(),
        "replay": {"tags": list(model.replay.tags), "longest": _floats(model.replay.longest)},
        "bands": [asdict(b) for b in model.bands],
        "thresholds": _floats(model.thresholds),
        "hourly_limits": _floats(model.hourly_limits),
    }


def model_from_state(state: dict[str, Any]) -> WaterAttackModel:
    """The model ``model_state`` described; raises ``KeyError``/``TypeError`` on a bad state."""
    net = state["network"]
    network = WaterNetwork(
        tanks=tuple(Tank(**t) for t in net["tanks"]),
        links=tuple(Link(**x) for x in net["links"]),
        controls=tuple(LevelControl(**c) for c in net["controls"]),
    )
    model = WaterAttackModel(network, tuple(state["columns"]), WatchSettings(**state["settings"]))
    physics = model.physics
    physics.balances = [
        TankBalance(
            tank=b["tank"], links=tuple(b["links"]), coef=np.array(b["coef"]), spread=b["spread"]
        )
        for b in state["balances"]
    ]
    physics.envelopes = [
        (int(s), int(lv), float(hi), float(lo), str(link))
        for s, lv, hi, lo, link in state["envelopes"]
    ]
    physics.curves = [
        PumpCurve(**{**c, "siblings": tuple(c["siblings"]), "coef": np.array(c["coef"])})
        for c in state["curves"]
    ]
    model.cross.restore(state["cross"])
    model.replay = ReplayLimits(
        tags=tuple(int(j) for j in state["replay"]["tags"]),
        longest=np.array(state["replay"]["longest"], dtype=float),
    )
    model.bands = tuple(ControlBand(**b) for b in state["bands"])
    model.thresholds = np.array(state["thresholds"], dtype=float)
    model.hourly_limits = np.array(state["hourly_limits"], dtype=float)
    return model


def save_model(model: WaterAttackModel, path: Path) -> None:
    """Write a fitted model to ``path`` (JSON)."""
    path.write_text(json.dumps(model_state(model)), encoding="utf-8")


def load_model(path: Path) -> WaterAttackModel:
    """Read a model ``save_model`` wrote; a missing, foreign or damaged file is refused.

    >>> load_model(Path("/nonexistent/water.json"))
    Traceback (most recent call last):
    ...
    civicguard.detect.water.persist.ModelFileError: water model /nonexistent/water.json: \
cannot read it (No such file or directory)
    """
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelFileError(f"water model {path}: cannot read it ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"water model {path}: not JSON ({exc})") from exc
    found = state.get("format") if isinstance(state, dict) else None
    if found != FORMAT:
        raise ModelFileError(f"water model {path}: format {found!r}, expected {FORMAT!r}")
    try:
        return model_from_state(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"water model {path}: damaged ({type(exc).__name__}: {exc})") from exc

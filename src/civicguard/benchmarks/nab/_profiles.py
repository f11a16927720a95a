"""NAB's application profiles: how much a detection, a false alarm and a miss weigh."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One NAB application profile (the cost matrix of ``profiles.json``)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


STANDARD = Profile(name="standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
REWARD_LOW_FP_RATE = Profile(
    name="reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0
)
REWARD_LOW_FN_RATE = Profile(
    name="reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0
)

#: The three published profiles, in the order NAB's scoreboard lists them.
PROFILES: tuple[Profile, ...] = (STANDARD, REWARD_LOW_FP_RATE, REWARD_LOW_FN_RATE)


def load_profiles(path: Path) -> tuple[Profile, ...]:
    """The profiles declared in a NAB ``profiles.json`` file, in file order."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return tuple(
        Profile(
            name=name,
            tp_weight=float(entry["CostMatrix"]["tpWeight"]),
            fp_weight=float(entry["CostMatrix"]["fpWeight"]),
            fn_weight=float(entry["CostMatrix"]["fnWeight"]),
        )
        for name, entry in raw.items()
    )

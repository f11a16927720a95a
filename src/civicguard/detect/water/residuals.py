"""Data-driven cross-checks: each reading predicted from all the others at the same hour.

Concealment by replay keeps each replayed tag plausible on its own, but no longer consistent
with the tags the attacker did not replay (a replayed tank level against live pump pressures).
One ridge regression per measured tag, learned on normal operation, exposes that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from civicguard.detect.water.physics import day_shape, hour_of_day, ridge


class CrossCheckModel:
    """Per tag, a linear prediction from every other tag and the hour of day."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.targets: list[int] = []
        self._inputs: list[np.ndarray] = []
        self._coef: list[np.ndarray] = []
        self._spread: list[float] = []

    def fit(self, values: np.ndarray, ts: np.ndarray) -> None:
        """Learn the predictions from normal rows; tags that never move are left out."""
        moving = values.std(axis=0) > 1e-6
        measured = np.array([c[0] in "LFP" for c in self.columns])
        self.targets = [int(j) for j in np.flatnonzero(moving & measured)]
        self._inputs, self._coef, self._spread = [], [], []
        shape = day_shape(hour_of_day(ts))
        for j in self.targets:
            inputs = np.flatnonzero(moving & (np.arange(len(self.columns)) != j))
            x = np.hstack([values[:, inputs], shape])
            coef = ridge(x, values[:, j])
            resid = values[:, j] - x @ coef
            self._inputs.append(inputs)
            self._coef.append(coef)
            self._spread.append(float(np.median(np.abs(resid)) * 1.4826) + 1e-6)

    def learned(self) -> dict[str, list[Any]]:
        """What ``fit`` learned, as plain lists (for saving a fitted model)."""
        return {
            "targets": list(self.targets),
            "inputs": [x.tolist() for x in self._inputs],
            "coef": [x.tolist() for x in self._coef],
            "spread": list(self._spread),
        }

    def restore(self, learned: dict[str, list[Any]]) -> None:
        """Take back what ``learned`` gave, instead of fitting again."""
        self.targets = [int(j) for j in learned["targets"]]
        self._inputs = [np.array(x, dtype=np.intp) for x in learned["inputs"]]
        self._coef = [np.array(x, dtype=float) for x in learned["coef"]]
        self._spread = [float(x) for x in learned["spread"]]

    def residuals(self, values: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """(n, targets) signed residuals in units of the normal spread."""
        shape = day_shape(hour_of_day(ts))
        out = np.empty((len(values), len(self.targets)))
        for k, j in enumerate(self.targets):
            x = np.hstack([values[:, self._inputs[k]], shape])
            out[:, k] = (values[:, j] - x @ self._coef[k]) / self._spread[k]
        return out

    def names(self) -> list[str]:
        """The tag each residual column speaks for."""
        return [self.columns[j] for j in self.targets]

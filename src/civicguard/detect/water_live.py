"""The water attack detector in the live pipeline, on the SCADA historian's hourly rows.

Each ``water.scada`` device (one historian, one network) gets its own
:class:`~civicguard.detect.water.LiveWaterWatch` on a model fitted offline
(``civicguard water fit``). Every reading is one hour of all the network's tags; the watch
judges it with the same step as the batch detector, so the pipeline flags exactly the hours
``detect_batch`` would on the same rows. One alert is raised per attack episode, when it opens,
naming the components whose evidence weighs most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from civicguard.catalog.model import Catalog
from civicguard.detect._support import Places, explain, figure, number, reading, reading_alert
from civicguard.detect.base import Detector
from civicguard.detect.model import Alert, Severity
from civicguard.detect.water.detector import HourVerdict, LiveWaterWatch, WaterAttackModel
from civicguard.detect.water.scoring import device_of
from civicguard.ingest.model import Device, ReadingBatch

#: The catalog stream of the water utility's SCADA historian.
SCADA_STREAM = "water.scada"


@dataclass(kw_only=True)
class _Historian:
    """One historian's watch, the last hour it judged and whether an episode is open."""

    watch: LiveWaterWatch
    last_ts: float = -np.inf
    open: bool = False
    verdicts: list[HourVerdict] = field(default_factory=list)


def implicated_devices(tags: tuple[str, ...]) -> list[str]:
    """The network components behind SCADA tags, most implicated first, each once.

    >>> implicated_devices(("F_PU7", "L_T4", "S_PU7"))
    ['PU7', 'T4']
    """
    return list(dict.fromkeys(device_of(t) for t in tags))


class WaterAttackDetector(Detector):
    """Alerts once per attack episode on a water network, from its hourly SCADA rows.

    Rows are judged in time order per device; a row no newer than the last one judged (a
    duplicate or a late arrival) is skipped, since the watch's history assumes one row an hour.
    """

    name = "water_attack"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        model: WaterAttackModel,
        *,
        stream: str = SCADA_STREAM,
        keep_verdicts: bool = False,
    ) -> None:
        self._places = Places(catalog, device)
        self._model = model
        self._stream = stream
        self._keep = keep_verdicts
        self._historians: dict[str, _Historian] = {}

    def verdicts(self, device_id: str) -> list[HourVerdict]:
        """Every hour judged for ``device_id`` (only kept when asked, for tests and replays)."""
        historian = self._historians.get(device_id)
        return list(historian.verdicts) if historian else []

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Judge each SCADA row of the batch, in time order per device."""
        if batch.stream != self._stream or len(batch) == 0:
            return []
        columns = [batch.fields.index(c) for c in self._model.columns if c in batch.fields]
        if len(columns) != len(self._model.columns):
            return []  # a stream without the model's tags: not this network's historian
        alerts: list[Alert] = []
        order = sorted(range(len(batch)), key=lambda i: (batch.device_ids[i], batch.ts[i]))
        for i in order:
            device_id = batch.device_ids[i]
            historian = self._historians.get(device_id)
            if historian is None:
                historian = self._historians[device_id] = _Historian(
                    watch=LiveWaterWatch(self._model)
                )
            ts = float(batch.ts[i])
            row = batch.values[i, columns]
            if ts <= historian.last_ts or not np.isfinite(row).all():
                continue
            historian.last_ts = ts
            verdict = historian.watch.push(ts, dict(zip(self._model.columns, row, strict=True)))
            if self._keep:
                historian.verdicts.append(verdict)
            if verdict.under_attack and not historian.open:
                alerts.append(self._alert(batch, i, verdict, now))
            historian.open = verdict.under_attack
        return alerts

    def _alert(self, batch: ReadingBatch, i: int, verdict: HourVerdict, now: float) -> Alert:
        place = self._places.of(batch.stream, batch.device_ids[i], batch.cells[i])
        devices = implicated_devices(verdict.implicated)
        s = self._model.settings
        named = ", ".join(devices) or "no single component"
        tags = ", ".join(verdict.implicated)
        return reading_alert(
            self.name,
            batch,
            i,
            place,
            now,
            kind="water_network_attack",
            severity=Severity.HIGH,
            title=f"Suspected attack on the water network ({place.name}): {named} implicated",
            explanation=explain(
                seen=(
                    f"The hourly SCADA readings of {place.name} no longer fit the network's "
                    f"learned physics, cross-checks and control logic, most of all at {tags}"
                ),
                against=(
                    f"evidence over its normal-operation threshold of 1 in {figure(s.k)} of "
                    f"the last {figure(s.n)} hours"
                ),
                sure="Likely an attack or a compromised sensor or PLC on those components",
                detector=self.name,
                score=verdict.score,
            ),
            evidence={
                "score": number(verdict.score),
                "threshold": 1.0,
                "suspicious_hours": s.k,
                "window_hours": s.n,
                "implicated_tags": list(verdict.implicated),
                "implicated_devices": devices,
                "reading": reading(batch, i),
            },
        )

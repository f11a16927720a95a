"""The detector contract: every detector sees batches, refusals and the passing of time.

Detectors keep their state in memory, in arrays indexed by a per-stream slot, and update a
whole batch at once. Reading data and storing alerts is somebody else's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from civicguard.catalog.model import Catalog
from civicguard.detect.model import Alert
from civicguard.ingest.model import Device, ReadingBatch, Rejection


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectContext:
    """What a detector may consult besides the events: the catalog and the device registry."""

    catalog: Catalog
    device: Callable[[str], Device | None]


class Detector:
    """Base class of detectors; override what applies, the rest does nothing."""

    #: Unique name, shown in alerts and metrics.
    name: str = "detector"

    def process(self, batch: ReadingBatch, now: float) -> list[Alert]:
        """Learn from and score one protected batch; return the alerts it raises."""
        return []

    def on_rejection(self, rejection: Rejection, now: float) -> list[Alert]:
        """See one refused message (a replay, a bad signature...); return alerts."""
        return []

    def tick(self, now: float) -> list[Alert]:
        """Let time pass (for detectors of absence, like silence); return alerts."""
        return []


class SlotIndex:
    """Gives each device a dense integer slot so that per-device state can live in arrays.

    >>> slots = SlotIndex()
    >>> slots.lookup(("a", "b", "a")).tolist()
    [0, 1, 0]
    >>> len(slots)
    2
    """

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, device_ids: tuple[str, ...] | list[str]) -> np.ndarray:
        """The slot of each device id, assigning new slots to ids not seen before."""
        slots = self._slots
        out = np.empty(len(device_ids), dtype=np.intp)
        for i, device_id in enumerate(device_ids):
            slot = slots.get(device_id)
            if slot is None:
                slot = slots[device_id] = len(self.ids)
                self.ids.append(device_id)
            out[i] = slot
        return out


def grow(array: np.ndarray, size: int, fill: float) -> np.ndarray:
    """``array`` extended along its first axis to at least ``size`` rows of ``fill``."""
    if array.shape[0] >= size:
        return array
    extra = max(size - array.shape[0], array.shape[0], 16)
    pad = np.full((extra, *array.shape[1:]), fill, dtype=array.dtype)
    return np.concatenate([array, pad])

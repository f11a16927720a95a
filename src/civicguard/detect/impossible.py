"""Physically impossible values: readings ingest refused for leaving their field's physical range.

The decoder refuses such a reading (it is bad input, never stored as a reading) and keeps it as
a dead letter; this detector turns the refusal into an alert, because a substation reporting
70 kV on a 40 kV scale is a broken sensor or forged data, and either needs a person. The field
and value are re-read from the kept payload against the catalog's ranges, so the evidence does
not depend on the wording of the refusal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from civicguard.catalog.model import Catalog, FieldSpec
from civicguard.detect._support import (
    DEFAULT_REARM_S,
    Episodes,
    Places,
    alert,
    explain,
    figure,
    label,
)
from civicguard.detect.base import Detector, SlotIndex
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, Reason, Rejection


class ImpossibleValueDetector(Detector):
    """Alerts (high) on a reading refused as out of physical range, once per device episode.

    An episode lasts while such refusals keep coming less than ``rearm_s`` apart. Refusals that
    are out of range for other reasons (a string too long) are malformed input, not physics,
    and raise nothing.
    """

    name = "impossible_value"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        rearm_s: float = DEFAULT_REARM_S,
    ) -> None:
        self._catalog = catalog
        self._device = device
        self._places = Places(catalog, device)
        self._slots = SlotIndex()
        self._episodes = Episodes(conditions=1, rearm_s=rearm_s)

    def on_rejection(self, rejection: Rejection, now: float) -> list[Alert]:
        """Alert on the first impossible reading of a device's episode."""
        if rejection.reason is not Reason.OUT_OF_RANGE or not rejection.device_id:
            return []
        stream = rejection.stream or ""
        if not self._catalog.has_stream(stream):
            return []
        found = _violation(self._catalog.stream(stream).numeric_fields, rejection.payload)
        if found is None:
            return []
        key = rejection.device_id
        when = rejection.received_at
        if not self._episodes.open_one(int(self._slots.lookup((key,))[0]), when):
            return []
        spec, value, refused = found
        assert spec.range is not None
        low, high = spec.range
        place = self._places.of(stream, key)
        unit = f" {spec.unit}" if spec.unit else ""
        beyond = low - value if value < low else value - high
        score = beyond / (high - low) if high > low else 1.0
        return [
            alert(
                detector=self.name,
                kind="impossible_value",
                severity=Severity.HIGH,
                title=(
                    f"Impossible {label(spec).lower()} {figure(value)}{unit} from {place.name} "
                    f"(physical range {figure(low)} to {figure(high)}{unit})"
                ),
                explanation=explain(
                    seen=(
                        f"{place.name} sent {spec.name} = {figure(value)}{unit}, which ingest "
                        "refused and kept as a dead letter"
                    ),
                    against=(
                        f"while the catalog's physical range of the field is {figure(low)} to "
                        f"{figure(high)}{unit}; it is {figure(beyond)}{unit} beyond"
                    ),
                    sure=(
                        "Certain that the value cannot be real: the sensor is broken or the "
                        f"data is forged (score = excess over the range's width, {figure(score)})"
                    ),
                    detector=self.name,
                    score=score,
                ),
                stream=stream,
                device_id=key,
                place=place,
                ts=refused["ts"] if refused["ts"] is not None else when,
                now=now,
                evidence={
                    "field": spec.name,
                    "unit": spec.unit,
                    "value": value,
                    "range": [low, high],
                    "beyond": beyond,
                    "score": score,
                    "readings": [refused],
                },
            )
        ]


def _violation(
    specs: tuple[FieldSpec, ...], payload: bytes
) -> tuple[FieldSpec, float, dict[str, Any]] | None:
    """The first field of the refused reading outside its physical range, and the reading."""
    try:
        parsed = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        return None
    values = parsed.get("values") if isinstance(parsed, dict) else None
    if not isinstance(values, dict):
        return None
    assert isinstance(parsed, dict)
    for spec in specs:
        v = values.get(spec.name)
        if spec.range is None or isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v) and not spec.range[0] <= v <= spec.range[1]:
            ts, seq = parsed.get("ts"), parsed.get("seq")
            numeric = isinstance(ts, int | float) and not isinstance(ts, bool)
            reading = {
                "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
                "ts": float(ts) if numeric and ts is not None else None,
                "values": {spec.name: float(v)},
            }
            return spec, float(v), reading
    return None

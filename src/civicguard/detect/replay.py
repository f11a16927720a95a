"""Replays: ingest refused a message whose sequence number the device had already used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from civicguard.catalog.model import Catalog
from civicguard.detect._support import DEFAULT_REARM_S, Episodes, Places, alert, explain
from civicguard.detect.base import Detector, SlotIndex
from civicguard.detect.model import Alert, Severity
from civicguard.ingest.model import Device, Reason, Rejection


class ReplayDetector(Detector):
    """Alerts (high) on a replayed sequence number, once per device per replay episode.

    A replay is someone re-sending a captured message: the device's key is known or the
    traffic is being tampered with, either way a person should look.
    """

    name = "replay"

    def __init__(
        self,
        catalog: Catalog,
        device: Callable[[str], Device | None],
        *,
        rearm_s: float = DEFAULT_REARM_S,
    ) -> None:
        self._device = device
        self._places = Places(catalog, device)
        self._slots = SlotIndex()
        self._episodes = Episodes(conditions=1, rearm_s=rearm_s)

    def on_rejection(self, rejection: Rejection, now: float) -> list[Alert]:
        """Alert on the first replay from a device since it was last quiet for a while."""
        # Replays are judged per authenticated device; without one there is nobody to name.
        if rejection.reason is not Reason.REPLAYED_SEQUENCE or not rejection.device_id:
            return []
        key = rejection.device_id
        when = rejection.received_at
        if not self._episodes.open_one(int(self._slots.lookup((key,))[0]), when):
            return []
        device = self._device(key)
        stream = rejection.stream or (device.stream if device else "")
        place = self._places.of(stream, rejection.device_id)
        seq = "?" if rejection.seq is None else str(rejection.seq)
        replayed = _replayed_reading(rejection.payload)
        return [
            alert(
                detector=self.name,
                kind="replayed_message",
                severity=Severity.HIGH,
                title=(
                    f"Replayed message from {place.name}: sequence number {seq} was already used"
                ),
                explanation=explain(
                    seen=(
                        f"{place.name} sent a message with sequence number {seq} "
                        f"over {rejection.transport.value}, which it had already used"
                    ),
                    against=(
                        "while every device must number its messages upwards and a number "
                        "beyond the replay window is never accepted twice"
                    ),
                    sure=(
                        "Certain that the number was reused: someone holds the device's "
                        "credentials or is re-sending captured traffic"
                    ),
                    detector=self.name,
                    score=1.0,
                ),
                stream=stream,
                device_id=rejection.device_id,
                place=place,
                ts=float(replayed["ts"]) if replayed and replayed["ts"] is not None else when,
                now=now,
                evidence={
                    "reason": rejection.reason.value,
                    "detail": rejection.detail,
                    "transport": rejection.transport.value,
                    "received_at": when,
                    "seq": rejection.seq,
                    "score": 1.0,
                    "readings": [replayed] if replayed else [],
                },
            )
        ]


def _replayed_reading(payload: bytes) -> dict[str, Any] | None:
    """The refused reading (already scrubbed by the privacy gateway), if it is one."""
    try:
        parsed = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or "seq" not in parsed:
        return None
    ts = parsed.get("ts")
    return {
        "seq": parsed.get("seq"),
        "ts": ts if isinstance(ts, int | float) and not isinstance(ts, bool) else None,
        "values": parsed.get("values") if isinstance(parsed.get("values"), dict) else {},
    }

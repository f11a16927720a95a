"""The incident desk: groups alerts by place and time into incidents and runs their life cycle.

Alerts with a place group by area. Alerts without one (an ingest door probed by strangers, a
device with no registered site) group by what they are about: their device, else their
detector, stream and door. They never share an incident only because none of them has a place.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Sequence

import h3

from civicguard.clock import Clock
from civicguard.detect.model import Alert, Severity
from civicguard.respond.model import Incident, IncidentStatus
from civicguard.store.repositories import AlertRepository, IncidentRepository

#: Alerts whose cells share an ancestor at this H3 resolution (about 0.7 km²) are one place.
AREA_RESOLUTION = 8


class TransitionError(ValueError):
    """An incident cannot move to the requested status from the one it is in."""


def area_of(cell: str) -> str:
    """The area an alert's cell belongs to, for grouping."""
    if not cell or not h3.is_valid_cell(cell):
        return cell
    if h3.get_resolution(cell) <= AREA_RESOLUTION:
        return cell
    return str(h3.cell_to_parent(cell, AREA_RESOLUTION))


def group_key(alert: Alert) -> str:
    """What ``alert`` groups by: alerts with equal keys within the window share an incident.

    The area of its cell when it has one; else ``device:<id>`` when it names a device; else
    ``source:<detector>:<stream>:<transport>`` (the transport from its evidence, which is what
    tells the bursts of strangers at the MQTT door from those at the HTTP door).

    >>> import h3
    >>> from civicguard.detect.model import Alert, Severity
    >>> def at(cell, device_id=None, transport=""):
    ...     return Alert(detector="auth_failures", kind="auth_failure_burst",
    ...         severity=Severity.MEDIUM, title="t", stream="", device_id=device_id, cell=cell,
    ...         ts=0.0, created_at=0.0, evidence={"transport": transport}, explanation="")
    >>> h3.get_resolution(group_key(at(h3.latlng_to_cell(21.8818, -102.2960, 10))))
    8
    >>> group_key(at("", "pump-003")), group_key(at("", transport="mqtt"))
    ('device:pump-003', 'source:auth_failures::mqtt')
    """
    if alert.cell:
        return area_of(alert.cell)
    if alert.device_id:
        return f"device:{alert.device_id}"
    transport = alert.evidence.get("transport")
    door = transport if isinstance(transport, str) else ""
    return f"source:{alert.detector}:{alert.stream}:{door}"


def key_of(incident: Incident) -> str:
    """The group key of ``incident``; for one stored before keys were kept, its cell's area."""
    return incident.group_key or area_of(incident.cell)


class IncidentDesk:
    """Opens incidents for new alerts or attaches them to a recent one with the same group key."""

    def __init__(
        self,
        incidents: IncidentRepository,
        alerts: AlertRepository,
        clock: Clock,
        window_s: float = 600.0,
        district_of: Callable[[str], str] = lambda _device_id: "",
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self._incidents = incidents
        self._alerts = alerts
        self._clock = clock
        self.window_s = window_s
        #: The district of a device, named on the incidents its alerts open.
        self.district_of = district_of
        #: Takes personal identifiers out of an operator's note before it is stored; without
        #: one, the default free-text scrubber (loaded on the first note: it takes seconds).
        self._scrub = scrub
        self._lock = threading.Lock()
        #: The incident each group key's next alert may join: the last one opened for the key
        #: (rebuilt so from the store, whatever order it returns unresolved incidents in).
        self._active: dict[str, Incident] = {}
        for incident in incidents.unresolved():
            key = key_of(incident)
            held = self._active.get(key)
            if held is None or incident.opened_at > held.opened_at:
                self._active[key] = incident

    def file(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Attach each alert to an incident, store both; return the alerts with incident ids."""
        filed: list[Alert] = []
        changed: dict[str, Incident] = {}
        with self._lock:
            for alert in alerts:
                key = group_key(alert)
                current = self._active.get(key)
                fresh = (
                    current is not None
                    and current.status is not IncidentStatus.RESOLVED
                    and alert.created_at - current.updated_at <= self.window_s
                )
                if current is None or not fresh:
                    current = Incident(
                        id=str(uuid.uuid4()),
                        opened_at=alert.created_at,
                        updated_at=alert.created_at,
                        status=IncidentStatus.OPEN,
                        severity=alert.severity.value,
                        title=alert.title,
                        cell=area_of(alert.cell),
                        district=self.district_of(alert.device_id) if alert.device_id else "",
                        alert_count=1,
                        group_key=key,
                    )
                else:
                    worse = Severity(alert.severity).rank > Severity(current.severity).rank
                    current = dataclasses.replace(
                        current,
                        updated_at=alert.created_at,
                        alert_count=current.alert_count + 1,
                        severity=alert.severity.value if worse else current.severity,
                        title=alert.title if worse else current.title,
                    )
                self._active[key] = current
                changed[current.id] = current
                filed.append(dataclasses.replace(alert, incident_id=current.id))
        for incident in changed.values():
            self._incidents.upsert(incident)
        self._alerts.write(filed)
        return filed

    def scrub_note(self, note: str) -> str:
        """``note`` with personal identifiers replaced by tags, as it will be stored."""
        if self._scrub is None:
            from civicguard.privacy.scrub import default_scrubber

            self._scrub = default_scrubber().scrub_text
        return self._scrub(note)

    def acknowledge(self, incident_id: str, who: str, note: str = "") -> Incident:
        """Move an open incident to acknowledged, recording who and when."""
        return self._transition(incident_id, IncidentStatus.ACKNOWLEDGED, who, note)

    def resolve(self, incident_id: str, who: str, note: str = "") -> Incident:
        """Resolve an open or acknowledged incident, recording who and when."""
        return self._transition(incident_id, IncidentStatus.RESOLVED, who, note)

    def _transition(self, incident_id: str, to: IncidentStatus, who: str, note: str) -> Incident:
        note = self.scrub_note(note) if note else ""  # outside the lock: it takes milliseconds
        with self._lock:
            incident = self._incidents.get(incident_id)
            if incident is None:
                raise KeyError(incident_id)
            allowed = {
                IncidentStatus.ACKNOWLEDGED: (IncidentStatus.OPEN,),
                IncidentStatus.RESOLVED: (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED),
            }[to]
            if incident.status not in allowed:
                raise TransitionError(
                    f"incident is {incident.status.value}; cannot become {to.value}"
                )
            now = self._clock.now()
            changes: dict[str, object] = {"status": to, "updated_at": now}
            if to is IncidentStatus.ACKNOWLEDGED:
                changes |= {"acknowledged_by": who, "acknowledged_at": now}
            else:
                changes |= {"resolved_by": who, "resolved_at": now}
            if note:
                changes["note"] = (incident.note + "\n" + note).strip()
            updated = dataclasses.replace(incident, **changes)  # type: ignore[arg-type]
            self._incidents.upsert(updated)
            key = key_of(updated)
            if to is IncidentStatus.RESOLVED:
                if self._active.get(key, updated).id == updated.id:
                    self._active.pop(key, None)
            elif key in self._active and self._active[key].id == updated.id:
                self._active[key] = updated
            return updated

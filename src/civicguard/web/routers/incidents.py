"""Incidents: list, look at one, acknowledge and resolve (changes go out on the live feed)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query

from civicguard.respond.incidents import TransitionError
from civicguard.respond.model import Incident, IncidentStatus
from civicguard.web.deps import API_PREFIX, PlatformDep, StaffDep
from civicguard.web.errors import ApiError, error_responses
from civicguard.web.schemas import IncidentAction, IncidentDetail, IncidentPublic

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])

_NO_INCIDENT = "No such incident (not_found)."
_TRANSITION = error_responses(
    e404=_NO_INCIDENT, e409="The incident is not in a state this allows (invalid_transition)."
)


def incident_dict(incident: Incident) -> dict[str, Any]:
    """An incident as the API and the live feed show it."""
    out = dataclasses.asdict(incident)
    out["status"] = incident.status.value
    return out


@router.get("", response_model=list[IncidentPublic])
def list_incidents(
    platform: PlatformDep,
    status: IncidentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Incidents, newest first, optionally in one status."""
    rows = platform.store.incidents.query(status=status.value if status else None, limit=limit)
    return [incident_dict(i) for i in rows]


@router.get(
    "/{incident_id}", response_model=IncidentDetail, responses=error_responses(e404=_NO_INCIDENT)
)
def get_incident(incident_id: str, platform: PlatformDep) -> dict[str, Any]:
    """One incident with its alerts."""
    incident = platform.store.incidents.get(incident_id)
    if incident is None:
        raise ApiError(404, "not_found", f"no incident {incident_id!r}")
    alerts = platform.store.alerts.query(incident_id=incident_id, limit=1000)
    return {**incident_dict(incident), "alerts": [a.as_dict() for a in alerts]}


def _transition(
    platform: PlatformDep, incident_id: str, to: IncidentStatus, who: str, note: str
) -> dict[str, Any]:
    desk = platform.desk
    action = desk.acknowledge if to is IncidentStatus.ACKNOWLEDGED else desk.resolve
    try:
        incident = action(incident_id, who, note)
    except KeyError:
        raise ApiError(404, "not_found", f"no incident {incident_id!r}") from None
    except TransitionError as exc:
        raise ApiError(409, "invalid_transition", str(exc)) from exc
    out = incident_dict(incident)
    platform.feed.publish({"type": "incident", **out})
    return out


@router.post("/{incident_id}/acknowledge", response_model=IncidentPublic, responses=_TRANSITION)
def acknowledge_incident(
    incident_id: str, platform: PlatformDep, session: StaffDep, body: IncidentAction | None = None
) -> dict[str, Any]:
    """Take charge of an open incident; 409 if it is not open."""
    note = body.note if body else ""
    return _transition(platform, incident_id, IncidentStatus.ACKNOWLEDGED, session.username, note)


@router.post("/{incident_id}/resolve", response_model=IncidentPublic, responses=_TRANSITION)
def resolve_incident(
    incident_id: str, platform: PlatformDep, session: StaffDep, body: IncidentAction | None = None
) -> dict[str, Any]:
    """Close an open or acknowledged incident; 409 if it is already resolved."""
    note = body.note if body else ""
    return _transition(platform, incident_id, IncidentStatus.RESOLVED, session.username, note)

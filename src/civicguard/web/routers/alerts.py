"""Alerts raised by the detectors, with their evidence."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from civicguard.web.deps import API_PREFIX, PlatformDep
from civicguard.web.errors import ApiError
from civicguard.web.routers.readings import parse_instant
from civicguard.web.schemas import AlertPublic

router = APIRouter(prefix=f"{API_PREFIX}/alerts", tags=["alerts"])


@router.get("", response_model=list[AlertPublic])
def list_alerts(
    platform: PlatformDep,
    *,
    since: Annotated[str | None, Query(description="Unix seconds or ISO 8601")] = None,
    severity: str | None = None,
    stream: str | None = None,
    incident: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Alerts, newest first, filtered by time, severity, stream or incident."""
    alerts = platform.store.alerts.query(
        since=parse_instant(since, "since"),
        severity=severity,
        stream=stream,
        incident_id=incident,
        limit=limit,
    )
    return [a.as_dict() for a in alerts]


@router.get("/{alert_id}", response_model=AlertPublic)
def get_alert(alert_id: str, platform: PlatformDep) -> dict[str, Any]:
    """One alert with its evidence."""
    alert = platform.store.alerts.get(alert_id)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return alert.as_dict()

"""Alerts raised by the detectors, with their evidence; operators' marks and detector feedback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from civicguard.detect import feedback
from civicguard.detect.model import Verdict
from civicguard.web.deps import API_PREFIX, PlatformDep, StaffDep
from civicguard.web.errors import ApiError, error_responses
from civicguard.web.routers.readings import parse_instant
from civicguard.web.schemas import (
    AlertMarkCreate,
    AlertMarkPublic,
    AlertPublic,
    DetectorFeedbackPublic,
)

router = APIRouter(prefix=f"{API_PREFIX}/alerts", tags=["alerts"])
#: Figures about the detectors themselves, for tuning.
detectors_router = APIRouter(prefix=f"{API_PREFIX}/detectors", tags=["alerts"])

_NO_ALERT = error_responses(e404="No such alert (not_found).")


def _scrub(text: str) -> str:
    """``text`` with personal identifiers replaced (the PII scrubber is built on first use)."""
    from civicguard.privacy.scrub import default_scrubber

    return default_scrubber().scrub(text).text


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


@router.get("/{alert_id}", response_model=AlertPublic, responses=_NO_ALERT)
def get_alert(alert_id: str, platform: PlatformDep) -> dict[str, Any]:
    """One alert with its evidence."""
    alert = platform.store.alerts.get(alert_id)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return alert.as_dict()


@router.post(
    "/{alert_id}/mark", response_model=AlertMarkPublic, status_code=201, responses=_NO_ALERT
)
def mark_alert(
    alert_id: str, body: AlertMarkCreate, platform: PlatformDep, session: StaffDep
) -> dict[str, Any]:
    """Mark an alert a real problem (``true``) or a false alarm (``false``), with a note.

    The latest mark of an alert counts; earlier ones are kept. The note passes the PII
    scrubber before it is stored.
    """
    try:
        mark = feedback.mark_alert(
            platform.store,
            alert_id,
            Verdict(body.verdict),
            by=session.username,
            note=body.note,
            now=platform.clock.now(),
            scrub=_scrub,
        )
    except feedback.MarkError as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from exc
    return mark.as_dict()


@router.get("/{alert_id}/marks", response_model=list[AlertMarkPublic], responses=_NO_ALERT)
def list_marks(alert_id: str, platform: PlatformDep) -> list[dict[str, Any]]:
    """Every mark of one alert, newest first."""
    if platform.store.alerts.get(alert_id) is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return [m.as_dict() for m in platform.store.marks.query(alert_id=alert_id)]


@detectors_router.get("/feedback", response_model=list[DetectorFeedbackPublic])
def detector_feedback(platform: PlatformDep) -> list[dict[str, object]]:
    """Per detector: alerts raised, alerts marked true and false, and precision among marked."""
    return [f.as_dict() for f in feedback.feedback(platform.store)]

"""The command-centre page, liveness and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from civicguard.metrics import METRICS
from civicguard.web.deps import AuthorisedDep, PlatformDep

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
def command_centre() -> FileResponse:
    """The command-centre page (it asks for a login itself when there is no session)."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


@router.get("/dpo", include_in_schema=False)
def dpo_page() -> FileResponse:
    """The data protection officer's page (signs in like the command centre)."""
    return FileResponse(STATIC / "dpo.html", headers={"Cache-Control": "no-store"})


@router.get("/api/v1/health", tags=["ops"])
def health(platform: PlatformDep) -> dict[str, str]:
    """Liveness: the process answers and knows its catalog."""
    return {"status": "ok", "catalog_version": platform.catalog.version}


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics(_: AuthorisedDep) -> Response:
    """Prometheus metrics: anonymous from the loopback address, otherwise admins only."""
    return Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)

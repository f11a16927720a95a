"""The web application: the HTTP API under /api/v1, the command-centre page and /metrics."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from civicguard.platform import Platform
from civicguard.web.deps import API_PREFIX, authorise  # noqa: F401 - re-exported
from civicguard.web.errors import install_error_handlers, with_shared_errors
from civicguard.web.routers import (
    alerts,
    auth,
    catalog,
    citizens,
    dead_letters,
    devices,
    dpo,
    incidents,
    ingest,
    map,
    pages,
    readings,
    stream,
    users,
)
from civicguard.web.routers.pages import STATIC
from civicguard.web.sessions import SessionSigner

#: SSE comment sent to idle clients so that proxies and browsers keep the stream open.
HEARTBEAT_S = 15.0


#: Every router of the app; each carries its full path prefix (the access table keys on it).
ROUTERS = (
    auth.router,
    users.router,
    devices.router,
    readings.router,
    alerts.router,
    alerts.detectors_router,
    incidents.router,
    catalog.router,
    dead_letters.router,
    map.router,
    ingest.router,
    citizens.router,
    dpo.router,
    stream.router,
    pages.router,
)


#: Where the docs page's Swagger UI assets are served from.
DOCS_ASSETS = "/docs-assets"


def create_app(platform: Platform, *, heartbeat_s: float = HEARTBEAT_S) -> FastAPI:
    """The FastAPI app serving ``platform``; every route passes the access table (deny default)."""
    # FastAPI's own /docs page loads Swagger UI from a CDN; fastapi-offline serves the same
    # page with the assets shipped in its package, so the docs work on a closed network.
    app = FastAPIOffline(
        title="civicguard",
        version="1",
        description="Privacy-by-design security operations for a city.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        static_url=DOCS_ASSETS,
        dependencies=[Depends(authorise)],
    )
    app.state.platform = platform
    app.state.signer = SessionSigner(platform.keys.get_or_create("web/session"))
    app.state.heartbeat_s = heartbeat_s
    app.state.stopping = threading.Event()
    app.state.live_clients = 0
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    _declare_shared_errors(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _declare_shared_errors(app: FastAPI) -> None:
    """Make the app's OpenAPI declare the errors every route of a kind shares (see errors.py)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_shared_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

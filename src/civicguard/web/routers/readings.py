"""Stored readings after the privacy gateway; personal streams need a declared purpose."""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from civicguard.catalog.model import Category, Stream
from civicguard.govern.access import may_read_stream
from civicguard.platform import Platform
from civicguard.web.deps import API_PREFIX, PlatformDep, StaffDep
from civicguard.web.errors import ApiError, error_responses
from civicguard.web.schemas import ReadingPublic

router = APIRouter(prefix=f"{API_PREFIX}/readings", tags=["readings"])


def parse_instant(value: str | None, name: str) -> float | None:
    """Unix seconds from Unix seconds or an ISO 8601 instant with a timezone."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _bad_instant(name, "instant", "not Unix seconds or ISO 8601") from None
    if when.tzinfo is None:
        raise _bad_instant(name, "timezone", "ISO 8601 instants must carry a timezone")
    return when.timestamp()


def _bad_instant(name: str, rule: str, message: str) -> ApiError:
    where = f"query.{name}"
    problem = {"where": where, "rule": rule, "message": message}
    return ApiError(422, "invalid_request", f"{where}: {message}", errors=[problem])


def _check_stream(role: str, stream: Stream, purpose: str | None) -> None:
    if not may_read_stream(role, stream):
        raise ApiError(403, "forbidden", f"role {role!r} may not read stream {stream.name!r}")
    if stream.category is not Category.NON_PERSONAL and purpose not in stream.purposes:
        raise ApiError(
            403,
            "purpose_required",
            f"{stream.name} holds personal data: declare ?purpose= one of "
            f"{', '.join(stream.purposes)}",
        )


def _query(platform: Platform, stream: str | None, **filters: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = platform.store.readings.query(stream=stream, **filters)
    return rows


@router.get(
    "",
    response_model=list[ReadingPublic],
    responses=error_responses(
        e403="The role may not read the stream (forbidden), or the stream holds personal data "
        "and no purpose of it was declared (purpose_required).",
        e404="No such device or stream (unknown_device, unknown_stream).",
    ),
)
def list_readings(
    platform: PlatformDep,
    session: StaffDep,
    *,
    stream: str | None = None,
    device: str | None = None,
    cell: str | None = None,
    since: Annotated[str | None, Query(description="Unix seconds or ISO 8601")] = None,
    until: Annotated[str | None, Query(description="Unix seconds or ISO 8601")] = None,
    purpose: Annotated[str | None, Query(description="Required for personal streams")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Readings, newest first. Without a stream (or device) only non-personal streams are read."""
    filters: dict[str, Any] = {
        "device_id": device,
        "cell": cell,
        "since": parse_instant(since, "since"),
        "until": parse_instant(until, "until"),
        "limit": limit,
    }
    if device is not None:
        known = platform.registry.get(device)
        if known is None:
            raise ApiError(404, "unknown_device", f"no device {device!r}")
        if stream is not None and stream != known.stream:
            return []
        stream = known.stream
    if stream is not None:
        if not platform.catalog.has_stream(stream):
            raise ApiError(404, "unknown_stream", f"stream {stream!r} is not in the catalog")
        _check_stream(session.role, platform.catalog.stream(stream), purpose)
        return _query(platform, stream, **filters)
    # No stream named: merge the non-personal streams this role may read, newest first.
    readable = [
        s.name
        for s in platform.catalog.streams
        if s.category is Category.NON_PERSONAL and may_read_stream(session.role, s)
    ]
    per_stream = [_query(platform, name, **filters) for name in readable]
    merged = heapq.merge(*per_stream, key=lambda r: (r["ts"], r["id"]), reverse=True)
    return list(merged)[:limit]

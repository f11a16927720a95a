"""Device ingest over HTTP: authenticate the device, bound the body, hand it to IngestService.

A device proves who it is with ``Authorization: Bearer <secret>`` or with ``X-Device-Id`` and
``X-Signature`` (hex HMAC-SHA256 of the body under its secret). Refusals before a device is
known are recorded without their content.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from civicguard.bus.port import EventLogUnavailable
from civicguard.ingest.model import Device, IngestResult, Reason, Transport
from civicguard.ingest.registry import AuthError
from civicguard.platform import Platform
from civicguard.web.deps import (
    API_PREFIX,
    PlatformDep,
    bearer_token,
    declared_too_large,
    read_bounded,
)
from civicguard.web.errors import ApiError
from civicguard.web.schemas import ErrorPublic, IngestOutcome

router = APIRouter(prefix=API_PREFIX, tags=["ingest"])

#: Whole-body refusals and the HTTP status each gets.
_BODY_STATUS = {
    Reason.MALFORMED_JSON: 400,
    Reason.OVERSIZED: 413,
    Reason.BATCH_TOO_LARGE: 413,
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (400, 401, 403, 413, 503)
}
#: Seconds a device is told to wait when its readings could not be made durable.
RETRY_AFTER_S = 5


def _auth_failure(platform: Platform, exc: AuthError, device_id: str | None) -> ApiError:
    platform.ingest.refuse(exc.reason, exc.detail, Transport.HTTP, b"", device_id)
    status = 403 if exc.reason is Reason.REVOKED_DEVICE else 401
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ApiError(status, exc.reason.value, exc.detail, headers=headers)


@router.post(
    "/ingest",
    response_model=IngestOutcome,
    status_code=202,
    responses={**_ERRORS, 422: {"model": IngestOutcome}},
)
async def ingest(request: Request, platform: PlatformDep) -> Any:
    """Accept one reading or a JSON array of readings from an authenticated device.

    202 means every accepted reading is durable in the event log. When the log cannot make
    them durable (disk full or read-only, log unreachable) nothing is accepted: 503 with
    Retry-After, and the same body sent again later is taken as new.
    """
    try:
        return await _ingest(request, platform)
    except EventLogUnavailable as exc:
        raise ApiError(
            503,
            "unavailable",
            f"readings cannot be stored right now, nothing was accepted; send the same body "
            f"again after {RETRY_AFTER_S} s ({exc})",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None


async def _ingest(request: Request, platform: Platform) -> Any:
    limit = platform.catalog.limits.max_payload_bytes
    claimed = request.headers.get("x-device-id")
    token = bearer_token(request)
    oversized = f"body is larger than the limit of {limit} bytes"
    if declared_too_large(request, limit):
        platform.ingest.refuse(Reason.OVERSIZED, oversized, Transport.HTTP, b"", claimed)
        raise ApiError(413, Reason.OVERSIZED.value, oversized)

    device: Device | None = None
    if token is not None:
        # A bearer device is known before its body is read: strangers never get to upload.
        try:
            device = platform.registry.by_token(token)
        except AuthError as exc:
            raise _auth_failure(platform, exc, None) from None
    elif claimed is None or request.headers.get("x-signature") is None:
        missing = AuthError(
            Reason.BAD_CREDENTIALS,
            "send Authorization: Bearer <device secret>, or X-Device-Id and X-Signature",
        )
        raise _auth_failure(platform, missing, claimed)

    body = await read_bounded(request, limit)
    if body is None:
        platform.ingest.refuse(
            Reason.OVERSIZED, oversized, Transport.HTTP, b"", device.id if device else claimed
        )
        raise ApiError(413, Reason.OVERSIZED.value, oversized)
    if device is None:
        assert claimed is not None
        try:
            device = platform.registry.by_signature(claimed, body, request.headers["x-signature"])
        except AuthError as exc:
            raise _auth_failure(platform, exc, claimed) from None

    # Submitting may wait on the event log (NATS); keep the event loop free meanwhile.
    result = await run_in_threadpool(platform.ingest.submit, device, body, Transport.HTTP)
    return _respond(result)


def _respond(result: IngestResult) -> JSONResponse:
    if not result.accepted and not result.duplicates and len(result.rejections) == 1:
        whole = result.rejections[0]
        status = _BODY_STATUS.get(whole.reason)
        if status is not None and whole.index is None:
            return JSONResponse({"reason": whole.reason.value, "detail": whole.detail}, status)
    outcome = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": [r.as_dict() for r in result.rejections],
    }
    status = 202 if result.accepted or result.duplicates else 422
    return JSONResponse(outcome, status)

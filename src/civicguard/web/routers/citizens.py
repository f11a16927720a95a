"""Citizens on the API: consent with signed receipts, subject requests, citizen reports.

Who may call what, and why:

* The **citizen app's backend** acts for citizens. It is a provisioned device of a stream whose
  legal basis is consent and authenticates with its device secret
  (``Authorization: Bearer <secret>``), as it does for ingest. It has signed its citizens in
  itself; civicguard trusts it for its own stream only. It grants and withdraws consent,
  exports a citizen's data and asks for erasure (which waits for the DPO).
* **Residents** file reports without any account (size-capped). A report names a citizen only
  when the app's backend files it; anonymous callers cannot link a report to anyone.
* **Staff**, per the access table: operators and analysts read reports; the DPO lists, records
  and carries out subject requests; the DPO and auditors read the consent-gate counts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from civicguard.citizens import (
    ConsentError,
    ReportError,
    RequestKind,
    SubjectIdError,
)
from civicguard.ingest.model import Device, Reason
from civicguard.ingest.registry import AuthError
from civicguard.platform import Platform
from civicguard.web.deps import (
    API_PREFIX,
    PlatformDep,
    StaffDep,
    bearer_token,
    declared_too_large,
    read_bounded,
)
from civicguard.web.errors import ApiError, error_responses, invalid_request

router = APIRouter(prefix=API_PREFIX, tags=["citizens"])

#: Largest report body accepted, in bytes (the text itself is capped at 2000 characters).
MAX_REPORT_BYTES = 8 * 1024


class ConsentChange(BaseModel):
    """A grant or withdrawal for one citizen; no purposes means all of the stream's."""

    model_config = ConfigDict(extra="forbid")

    citizen: str = Field(min_length=1, max_length=64)
    purposes: list[str] | None = None


class CitizenRef(BaseModel):
    """The citizen a request is about."""

    model_config = ConfigDict(extra="forbid")

    citizen: str = Field(min_length=1, max_length=64)


class SubjectRequestCreate(CitizenRef):
    """A request the DPO received another way (a letter, the front desk)."""

    kind: RequestKind


class ReportCreate(BaseModel):
    """A citizen report: free text, a category, optionally a place."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    category: str = Field(min_length=1, max_length=32)
    lat: float | None = None
    lon: float | None = None
    citizen: str | None = Field(default=None, min_length=1, max_length=64)


def _app_backend(request: Request, platform: Platform, *, required: bool = True) -> Device | None:
    """The citizen app's backend device calling, or ApiError (None if optional and absent)."""
    token = bearer_token(request)
    if token is None:
        if not required:
            return None
        raise ApiError(
            401,
            Reason.BAD_CREDENTIALS.value,
            "the citizen app's backend authenticates with Authorization: Bearer <device secret>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        device = platform.registry.by_token(token)
    except AuthError as exc:
        status = 403 if exc.reason is Reason.REVOKED_DEVICE else 401
        raise ApiError(status, exc.reason.value, exc.detail) from None
    if device.stream not in platform.citizens.gate.streams:
        raise ApiError(
            403,
            "forbidden",
            f"device {device.id!r} reports {device.stream}, which does not rest on consent",
        )
    return device


def _consent_error(exc: Exception) -> ApiError:
    reason = "invalid_citizen" if isinstance(exc, SubjectIdError) else "invalid_consent"
    return ApiError(422, reason, str(exc))


_APP_BACKEND = (
    "The citizen app's backend did not authenticate with a valid device secret "
    "(bad_credentials, unknown_device)."
)
#: Errors of the routes only the citizen app's backend may call.
_BACKEND_ERRORS = error_responses(
    e401=_APP_BACKEND,
    e403="The device is revoked (revoked_device) or its stream does not rest on consent "
    "(forbidden).",
    e422="The request broke a rule of the API (invalid_request, with errors), or the "
    "citizen id (invalid_citizen) or purposes (invalid_consent) are not acceptable.",
)


@router.post("/citizens/consent/grant", status_code=201, responses=_BACKEND_ERRORS)
def grant_consent(body: ConsentChange, request: Request, platform: PlatformDep) -> Any:
    """Record a citizen's consent for the app's stream; returns the citizen's signed receipt."""
    device = _app_backend(request, platform)
    assert device is not None
    try:
        issued = platform.citizens.consent.grant(body.citizen, device.stream, body.purposes)
    except (ConsentError, SubjectIdError) as exc:
        raise _consent_error(exc) from None
    return issued.receipt


@router.post("/citizens/consent/withdraw", responses=_BACKEND_ERRORS)
def withdraw_consent(body: ConsentChange, request: Request, platform: PlatformDep) -> Any:
    """End a citizen's consent (from the next reading on); returns the signed receipt."""
    device = _app_backend(request, platform)
    assert device is not None
    try:
        issued = platform.citizens.consent.withdraw(body.citizen, device.stream, body.purposes)
    except (ConsentError, SubjectIdError) as exc:
        raise _consent_error(exc) from None
    return issued.receipt


@router.get("/citizens/consent/public-key")
def consent_public_key(platform: PlatformDep) -> dict[str, str]:
    """The PEM public key that consent receipts are signed with, and its key id."""
    signer = platform.citizens.signer
    return {"alg": "EdDSA", "crv": "Ed25519", "kid": signer.kid, "pem": signer.public_pem}


@router.post("/citizens/export", responses=_BACKEND_ERRORS)
def export_citizen(body: CitizenRef, request: Request, platform: PlatformDep) -> Any:
    """Everything linked to the citizen, each item with its purpose and retention."""
    device = _app_backend(request, platform)
    assert device is not None
    try:
        return platform.citizens.rights.export(body.citizen, by=f"device:{device.id}")
    except SubjectIdError as exc:
        raise _consent_error(exc) from None


@router.post("/citizens/erasure", status_code=202, responses=_BACKEND_ERRORS)
def request_erasure(body: CitizenRef, request: Request, platform: PlatformDep) -> Any:
    """Ask for the citizen's erasure; the DPO carries it out (see /subjects/requests)."""
    device = _app_backend(request, platform)
    assert device is not None
    try:
        return platform.citizens.rights.request(
            body.citizen, RequestKind.ERASURE, by=f"device:{device.id}"
        )
    except SubjectIdError as exc:
        raise _consent_error(exc) from None


@router.post(
    "/citizens/reports",
    status_code=201,
    responses=error_responses(
        400,
        413,
        e401="A report naming a citizen did not come from the citizen app's backend "
        "(bad_credentials).",
        e403="The device is revoked (revoked_device) or its stream does not rest on consent "
        "(forbidden).",
        e422="The report broke a rule (invalid_request, with errors; invalid_report).",
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReportCreate.model_json_schema()}},
        }
    },
)
async def file_report(request: Request, platform: PlatformDep) -> Any:
    """File a report (no account needed). Its text is scrubbed of personal data first.

    Body: ``{"text", "category", "lat"?, "lon"?, "citizen"?}``, at most 8 KiB; ``citizen``
    only from the citizen app's backend.
    """
    too_big = f"a report is at most {MAX_REPORT_BYTES} bytes"
    if declared_too_large(request, MAX_REPORT_BYTES):
        raise ApiError(413, Reason.OVERSIZED.value, too_big)
    raw = await read_bounded(request, MAX_REPORT_BYTES)
    if raw is None:
        raise ApiError(413, Reason.OVERSIZED.value, too_big)
    try:
        body = ReportCreate.model_validate_json(raw)
    except ValidationError as exc:
        # Name the fields, never echo the input: it may be the personal data we must not keep.
        raise invalid_request(
            {**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)
        ) from None
    if body.citizen is not None and _app_backend(request, platform, required=False) is None:
        raise ApiError(
            401,
            Reason.BAD_CREDENTIALS.value,
            "citizen: only the citizen app's backend may file a report for a named citizen",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return platform.citizens.reports.file(
            body.text, body.category, lat=body.lat, lon=body.lon, citizen=body.citizen
        )
    except (ReportError, SubjectIdError) as exc:
        raise ApiError(422, "invalid_report", str(exc)) from None


@router.get("/citizens/reports")
def list_reports(
    platform: PlatformDep, session: StaffDep, since: float | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Citizen reports, newest first (scrubbed text; sealed ones opened unless erased)."""
    return platform.citizens.reports.list(since=since, limit=max(1, min(limit, 1000)))


@router.get("/subjects/requests")
def list_requests(
    platform: PlatformDep, session: StaffDep, status: str | None = "pending", limit: int = 100
) -> list[dict[str, Any]]:
    """Subject requests (pending by default), oldest first; subjects by handle only."""
    from civicguard.citizens.subjects import public_request

    rows = platform.citizens.rights.records.requests.query(
        status=status or None, limit=max(1, min(limit, 1000))
    )
    return [public_request(r) for r in rows]


@router.post("/subjects/requests", status_code=201)
def record_request(
    body: SubjectRequestCreate, platform: PlatformDep, session: StaffDep
) -> dict[str, Any]:
    """Record a request the DPO received by other means; it waits until fulfilled."""
    try:
        return platform.citizens.rights.request(
            body.citizen, body.kind, by=f"staff:{session.username}"
        )
    except SubjectIdError as exc:
        raise _consent_error(exc) from None


@router.post(
    "/subjects/requests/{request_id}/fulfil",
    responses=error_responses(e404="No such subject request (not_found)."),
)
def fulfil_request(request_id: str, platform: PlatformDep, session: StaffDep) -> Any:
    """Carry out a pending request: returns the export, or what the erasure destroyed."""
    try:
        return platform.citizens.rights.fulfil(request_id, by=f"staff:{session.username}")
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@router.get("/consent/counts")
def consent_counts(platform: PlatformDep, session: StaffDep) -> dict[str, Any]:
    """Per consent-based stream: readings admitted and refused by this process, and the
    refusals kept as dead letters (all processes)."""
    return {
        "process": platform.citizens.gate.counts(),
        "dead_letters": platform.store.dead_letters.count_by_reason().get(
            Reason.NO_CONSENT.value, 0
        ),
    }

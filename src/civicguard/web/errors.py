"""Machine-readable API errors: every error body is one shape, ``ErrorPublic``.

``{"reason": ..., "detail": ...}``, and for a request that broke the API's rules
(``invalid_request``, 422) also ``"errors": [{"where", "rule", "message"}, ...]``. No error
body echoes what the caller sent: it may be the personal data the platform must not keep.
A body that is not JSON at all is 400 ``malformed_json`` on every route, as on ingest.

:func:`error_responses` declares these bodies in the OpenAPI; ``web.app`` adds the ones every
route shares (401/403 behind a staff session, 422 where there is anything to validate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from civicguard.govern import access
from civicguard.web.schemas import ErrorPublic


class ApiError(Exception):
    """An error the API reports with a status, a stable reason code and a human detail."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers
        self.errors = errors


_HTTP_REASONS = {
    400: "malformed_json",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "oversized_payload",
}

#: What each error status means on this API, as the OpenAPI says it.
_MEANINGS = {
    400: "The body is not JSON (reason malformed_json).",
    401: "No valid credentials: sign in (staff) or send the device secret. "
    "WWW-Authenticate says which scheme.",
    403: "Authenticated, but this caller may not do this (reason forbidden, revoked_device, "
    "purpose_required, ...).",
    404: "No such resource (reason not_found, unknown_device, unknown_stream).",
    409: "The resource's state does not allow this (it exists already, or an incident's "
    "life cycle).",
    413: "The body is larger than the limit (reason oversized_payload or batch_too_large).",
    422: "The request broke a rule of the API (reason invalid_request, with errors: each "
    "field and rule) or of the platform (its own reason).",
    429: "Too many attempts; Retry-After says how many seconds to wait.",
    503: "Temporarily unable to take this; Retry-After says how many seconds to wait. "
    "Nothing was acknowledged: send it again.",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The authentication scheme to use (Bearer).",
        "schema": {"type": "string"},
    }
}
_HEADERS: dict[int, dict[str, Any]] = {401: _WWW_AUTHENTICATE, 429: _RETRY_AFTER, 503: _RETRY_AFTER}


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response of one error status: the ``ErrorPublic`` body and its headers."""
    response: dict[str, Any] = {
        "model": ErrorPublic,
        "description": description or _MEANINGS[status],
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def with_shared_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (an OpenAPI document) with the errors every operation of a kind can answer.

    Behind a staff session: 401 (no valid session) and 403 (the role may not). With anything
    to validate (parameters, a body): 422 ``invalid_request``, in place of FastAPI's own
    shape; with a body also 400 (not JSON). An operation's own declaration of a status wins.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorPublic.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorPublic"] = error_schema
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            statuses = []
            if not access.is_public(method.upper(), path):
                statuses += [401, 403]
            if "requestBody" in operation:
                statuses.append(400)
            if "requestBody" in operation or operation.get("parameters"):
                statuses.append(422)
            default_422 = responses.get("422", {}).get("description") == "Validation Error"
            if default_422:
                del responses["422"]
            for status in statuses:
                responses.setdefault(str(status), _openapi_error(status))
    for fastapi_own in ("HTTPValidationError", "ValidationError"):
        schemas.pop(fastapi_own, None)
    return spec


def _openapi_error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _MEANINGS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def error_responses(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: each status with the ``ErrorPublic`` body.

    ``described`` gives a status its own description, keyed ``e404="no such alert"``.
    """
    out: dict[int | str, dict[str, Any]] = {s: error_response(s) for s in statuses}
    for key, text in described.items():
        status = int(key.removeprefix("e"))
        out[status] = error_response(status, text)
    return out


def problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's errors as ``Problem`` items: where and which rule, never the input."""
    out = []
    for error in errors:
        loc: Sequence[Any] = error.get("loc", ())
        where = ".".join(str(part) for part in loc) or "body"
        out.append(
            {
                "where": where,
                "rule": str(error.get("type", "invalid")),
                "message": str(error.get("msg", "")),
            }
        )
    return out


def invalid_request(errors: Iterable[Mapping[str, Any]]) -> ApiError:
    """The 422 of a request that broke the API's rules (or the 400 of one that is not JSON)."""
    listed = list(errors)
    if any(e.get("type") == "json_invalid" for e in listed):
        return ApiError(400, "malformed_json", "the body is not valid JSON")
    found = problems(listed)
    detail = "; ".join(f"{p['where']}: {p['message']}" for p in found)
    return ApiError(422, "invalid_request", detail, errors=found)


def body_of(exc: ApiError) -> dict[str, Any]:
    """The JSON body of an error."""
    body: dict[str, Any] = {"reason": exc.reason, "detail": exc.detail}
    if exc.errors is not None:
        body["errors"] = exc.errors
    return body


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app returns use the ``ErrorPublic`` shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(body_of(exc), status_code=exc.status, headers=exc.headers)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        reason = _HTTP_REASONS.get(exc.status_code, "http_error")
        return JSONResponse(
            {"reason": reason, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def request_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return await api_error(request, invalid_request(exc.errors()))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_invalid)

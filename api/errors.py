"""Maps Shotline's error hierarchy and framework errors onto one JSON error shape."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.idempotency import Replay
from shared.constants import REQUEST_ID_HEADER
from shared.errors import (
    ApiKeyNotFound,
    AuthenticationFailed,
    BatchNotFinished,
    BatchNotFound,
    ConfigurationError,
    IdempotencyConflict,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidSignature,
    JobHasNoResult,
    JobNotFinished,
    JobNotFound,
    NoWebhook,
    OptionNotSupported,
    RateLimited,
    ResultGone,
    ShotlineError,
    StorageError,
    StoreUnavailable,
    UrlBlocked,
    WaitTimeout,
    WebhookSecretMissing,
)

log = structlog.get_logger("shotline.api")

#: HTTP status of each error class (the most specific class wins).
STATUS_OF: dict[type[ShotlineError], int] = {
    JobNotFound: 404,
    BatchNotFound: 404,
    ApiKeyNotFound: 404,
    JobNotFinished: 409,
    ResultGone: 410,
    JobHasNoResult: 409,
    BatchNotFinished: 409,
    AuthenticationFailed: 401,
    RateLimited: 429,
    IdempotencyConflict: 409,
    IdempotencyKeyReused: 422,
    InvalidRequest: 422,
    WaitTimeout: 504,
    NoWebhook: 409,
    WebhookSecretMissing: 422,
    UrlBlocked: 422,
    OptionNotSupported: 422,
    InvalidSignature: 403,
    StoreUnavailable: 503,
    StorageError: 502,
    ConfigurationError: 500,
}
RETRY_AFTER_SECONDS = 5
_HTTP_ERROR_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
    503: "service_unavailable", 504: "timeout",
}


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error body every failure of the API uses."""
    body: dict[str, Any] = {
        "error": code,
        "message": message,
        "request_id": getattr(request.state, "request_id", None),
    }
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(exc: ShotlineError) -> int:
    """HTTP status of ``exc``: that of its nearest class in :data:`STATUS_OF`."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


async def _shotline_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShotlineError)
    status = status_for(exc)
    headers: dict[str, str] | None = None
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    elif isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, AuthenticationFailed):
        headers = {"WWW-Authenticate": 'Bearer realm="shotline"'}
    details: list[dict[str, Any]] | None = None
    if isinstance(exc, UrlBlocked):
        details = [{"field": exc.field, "message": exc.message}]
    elif isinstance(exc, WaitTimeout):
        details = [{"job_id": exc.job_id}]
    elif isinstance(exc, OptionNotSupported):
        details = [{"field": name, "message": exc.message} for name in exc.fields]
    if status >= 500:
        log.warning("request failed", error_code=exc.code, error=exc.message, status=status)
    return error_response(request, status, exc.code, exc.message, details=details, headers=headers)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


#: What a valid body looks like, in the messages about bodies that are not one.
_BODY_EXAMPLE = 'a JSON object such as {"url": "https://example.com"}'


def _body_problem(request: Request, errors: list[dict[str, Any]]) -> str | None:
    """A message for a request whose body as a whole is unusable (not JSON, empty, form
    fields, a JSON array...), naming the fix; None when the errors are about fields.

    Without this the framework's errors name a character offset (``"field": "33"``) or a
    byte index (``"0"``) as if it were a field, or no field at all.
    """
    body_errors = [err for err in errors if tuple(err.get("loc", ()))[:1] == ("body",)]
    if not body_errors:
        return None
    first = body_errors[0]
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        position = loc[1] if len(loc) > 1 else None
        reason = str((first.get("ctx") or {}).get("error", "JSON decode error"))
        where = f" at character {position}" if isinstance(position, int) else ""
        return (f"the request body is not valid JSON ({reason}{where}): send {_BODY_EXAMPLE}"
                " with Content-Type: application/json")
    if (len(loc) != 1 and not isinstance(loc[1], int)) or isinstance(first.get("input"), dict):
        return None  # a JSON object with bad fields: the usual per-field messages say it best
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if first.get("type") == "missing" and first.get("input") is None:
        return (f"the request body is empty: send {_BODY_EXAMPLE}"
                " with Content-Type: application/json")
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        hint = " (curl -d sends form data unless you add -H 'Content-Type: application/json')" \
            if content_type == "application/x-www-form-urlencoded" else ""
        return (f"the request body is {content_type}, not JSON{hint}: send {_BODY_EXAMPLE}"
                " with Content-Type: application/json")
    return f"the request body must be {_BODY_EXAMPLE}, not {_json_kind(first.get('input'))}"


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str | bytes):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problem = _body_problem(request, list(exc.errors()))
    if problem is not None:
        return error_response(request, 422, "validation_error", problem,
                              details=[{"field": "body", "message": problem, "type": "invalid_body"}])
    details = [
        {"field": _field_of(err.get("loc", ())), "message": err.get("msg", ""),
         "type": err.get("type", "")}
        for err in exc.errors()
    ]
    summary = "; ".join(
        f"{d['field']}: {d['message']}" if d["field"] else str(d["message"]) for d in details
    )
    return error_response(request, 422, "validation_error", summary or "invalid request",
                          details=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_ERROR_CODES.get(exc.status_code, "http_error")
    return error_response(request, exc.status_code, code, str(exc.detail),
                          headers=getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this outside every middleware: the request id is no longer bound to
    # the log context, nor added to the response headers, so both are done here.
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error", path=request.url.path, request_id=request_id, status=500)
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return error_response(request, 500, "internal_error", "internal server error",
                          headers=headers)


async def _replay(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replay)
    return exc.response


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""
    app.add_exception_handler(Replay, _replay)  # an idempotent retry: the stored response
    app.add_exception_handler(ShotlineError, _shotline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

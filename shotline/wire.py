"""How the Python client speaks HTTP: request headers and bodies, response parsing, the
mapping of the API's errors onto exceptions, and the backoff between polls.

Pure functions of httpx requests and responses, shared by :class:`shotline.client.Client`
and :class:`shotline.client.AsyncClient` (which only do the I/O).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from shared.backoff import backoff_delay, parse_retry_after
from shotline import __version__
from shotline.errors import (
    ApiAuthError,
    ApiConflict,
    ApiError,
    ApiInvalidRequest,
    ApiNotFound,
    ApiRateLimited,
    ApiUnavailable,
    JobFailed,
    JobWaitTimeout,
)
from shotline.models import Accepted, CaptureOptions, JobView, ScreenshotRequest

_M = TypeVar("_M", bound=BaseModel)

_ERROR_BY_STATUS: dict[int, type[ApiError]] = {
    httpx.codes.UNAUTHORIZED: ApiAuthError,
    httpx.codes.FORBIDDEN: ApiAuthError,
    httpx.codes.NOT_FOUND: ApiNotFound,
    httpx.codes.GONE: ApiNotFound,  # a result deleted after its retention period
    httpx.codes.CONFLICT: ApiConflict,
    httpx.codes.PAYMENT_REQUIRED: ApiRateLimited,
    httpx.codes.TOO_MANY_REQUESTS: ApiRateLimited,
}
_AUTH_HEADERS = ("authorization", "x-api-key")
_KNOWN_OPTIONS = frozenset(CaptureOptions.model_fields)


class Backoff:
    """Delays between polls: ``initial`` seconds, growing by ``factor`` up to ``maximum``
    (:func:`shared.backoff.backoff_delay` without jitter: a poll is not a retry storm)."""

    def __init__(self, initial: float = 0.2, maximum: float = 2.0, factor: float = 1.5) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._polls = 0

    def next_delay(self, *, remaining: float, retry_after: float | None = None) -> float:
        """The next delay, never past the deadline; ``Retry-After`` wins when larger."""
        self._polls += 1
        delay = backoff_delay(self._polls, base=self.initial, cap=self.maximum, factor=self.factor,
                              jitter=False)
        return max(0.0, min(max(delay, retry_after or 0.0), remaining))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if readable."""
    return parse_retry_after(response.headers.get("retry-after"))


def api_error(response: httpx.Response) -> ApiError:
    """The exception for an error ``response``, carrying the API's JSON error body."""
    status = response.status_code
    code, message, details = f"http_{status}", response.reason_phrase or "error", None
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        code = str(body["error"])
        message = str(body.get("message") or message)
        request_id = body.get("request_id") or request_id
        details = body.get("details")
    elif response.text:
        message = response.text[:500]
    if status in _ERROR_BY_STATUS:
        cls = _ERROR_BY_STATUS[status]
    elif httpx.codes.is_client_error(status):
        cls = ApiInvalidRequest
    else:
        cls = ApiUnavailable
    return cls(message, code=code, status=status, request_id=request_id, details=details,
               retry_after=retry_after_seconds(response))


def unreachable(exc: httpx.TransportError) -> ApiUnavailable:
    """The exception for an API that could not be reached at all."""
    return ApiUnavailable(f"{type(exc).__name__}: {exc}", code="connection_error")


def without_unknown_options(data: Any) -> Any:
    """Drop capture options this client does not know (a newer server added them), so that
    version skew between client and server never breaks reading a job."""

    def clean(job: Any) -> None:
        if isinstance(job, dict) and isinstance(job.get("options"), dict):
            job["options"] = {k: v for k, v in job["options"].items() if k in _KNOWN_OPTIONS}

    if isinstance(data, dict):
        clean(data)
        jobs = data.get("jobs")
        for job in jobs if isinstance(jobs, list) else []:
            clean(job)
    return data


def parse_response(model: type[_M], response: httpx.Response) -> _M:
    """``response`` as ``model``, or the :func:`api_error` it stands for."""
    if response.is_error:
        raise api_error(response)
    return model.model_validate(without_unknown_options(response.json()))


def check_deleted(response: httpx.Response) -> None:
    """Nothing for the 204 of a deletion, else the :func:`api_error` it stands for."""
    if response.is_error:
        raise api_error(response)


def capture_body(url: str | ScreenshotRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of a capture: a :class:`ScreenshotRequest` or a URL plus fields.

    Plain fields go to the server as given (the server validates them), so a client can use
    fields its own version does not know yet.
    """
    if isinstance(url, ScreenshotRequest):
        return {**url.model_dump(mode="json", exclude_unset=True), **options}
    return {"url": url, **options}


def batch_body(urls: Sequence[str], webhook_url: str | None,
               options: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of ``POST /v1/batches``: the URLs and the capture options they share."""
    body: dict[str, Any] = {"urls": list(urls), "options": dict(options)}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    return body


#: Environment variables the clients (and the CLI) read when not given a key or base URL.
API_KEY_VARIABLES = ("SHOTLINE_API_KEY", "SHOTLINE_KEY")
API_URL_VARIABLE = "SHOTLINE_API_URL"


def key_from_environment(api_key: str | None) -> str | None:
    """``api_key``, or when None the first of :data:`API_KEY_VARIABLES` that is set (the key
    ``shotline dev`` prints is exported as ``SHOTLINE_KEY``), as the CLI reads them."""
    if api_key is not None:
        return api_key
    return next((os.environ[name] for name in API_KEY_VARIABLES if os.environ.get(name)), None)


def base_url_from_environment(base_url: str | None, default: str) -> str:
    """``base_url``, or when None ``SHOTLINE_API_URL``, or ``default``."""
    return (base_url or os.environ.get(API_URL_VARIABLE) or default).rstrip("/")


def default_headers(api_key: str | None) -> dict[str, str]:
    """Headers of every request: the client's name and, with a key, ``Authorization: Bearer``."""
    headers = {"User-Agent": f"shotline-python/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def same_origin(url: httpx.URL, base: httpx.URL) -> bool:
    """True when ``url`` has the scheme, host and port of ``base``."""
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)


def download_request(http: httpx.Client | httpx.AsyncClient, url: str) -> httpx.Request:
    """A GET of a result URL; the API key is only sent to the API's own origin (never to S3)."""
    request = http.build_request("GET", url, headers={"Accept": "*/*"})
    if not same_origin(request.url, http.base_url):
        for name in _AUTH_HEADERS:
            request.headers.pop(name, None)
    return request


def result_url(job: JobView) -> str:
    """The download URL of a succeeded job; :class:`ApiConflict` for any other."""
    if job.result is None:
        if job.status.value == "failed":
            raise ApiConflict(f"job {job.id} failed, so it has no result to download",
                              code="job_failed")
        raise ApiConflict(f"job {job.id} is still {job.status.value}; it has no result to"
                          " download yet", code="job_not_finished")
    return job.result.url


def checked_content(job: JobView, response: httpx.Response) -> bytes:
    """The downloaded bytes, once they match the job's ``sha256``."""
    if response.is_error:
        raise api_error(response)
    content = response.content
    assert job.result is not None
    if hashlib.sha256(content).hexdigest() != job.result.sha256:
        raise ApiError(f"download of job {job.id} does not match its sha256",
                       code="checksum_mismatch", status=response.status_code)
    return content


def job_failed(job: JobView) -> JobFailed:
    """The exception for a job that ended ``failed``."""
    error = job.error
    detail = f"{error.code}: {error.message}" if error else "no error recorded"
    return JobFailed(f"job {job.id} failed ({detail})", job=job,
                     error_code=error.code if error else None)


def still_running(job_id: str, timeout: float, last: JobView | None) -> JobWaitTimeout:
    """The exception for a wait that ran out of time."""
    state = last.status.value if last else "unknown"
    return JobWaitTimeout(f"job {job_id} is still {state} after {timeout:g}s")


def pollable(exc: ApiError) -> bool:
    """Errors that a wait outlives: the API or its Redis briefly down, or rate limiting."""
    return isinstance(exc, ApiUnavailable | ApiRateLimited)


def job_id_of(job: str | Accepted | JobView) -> str:
    """The id of a job given as an id, an :class:`Accepted` or a :class:`JobView`."""
    return job if isinstance(job, str) else job.id

"""Python client of the Shotline HTTP API, on httpx: :class:`Client` and :class:`AsyncClient`.

>>> from shotline.client import Client
>>> with Client("http://127.0.0.1:8000", api_key="...") as shotline:
...     shot = shotline.capture("https://example.com", full_page=True)
...     shot.save("example.png")

Both clients offer the same methods: ``submit``, ``get``, ``wait``, ``download``, ``capture``
(submit + wait + download), ``list_jobs``, ``submit_many``/``wait_many`` and the batch helpers
``submit_batch``/``get_batch``/``wait_batch``. Errors of the API become exceptions of
:mod:`shared.errors` (all :class:`~shared.errors.ApiError`) carrying its ``code``, ``message``
and ``request_id``; a job that ends ``failed`` raises :class:`~shared.errors.JobFailed` from
``capture``. Importing this module does not import the server side (FastAPI, Celery, Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from shared.errors import (
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
from shotline import __version__
from shotline.models import (
    Accepted,
    Batch,
    BatchAccepted,
    CaptureOptions,
    JobList,
    JobStatus,
    JobView,
    Screenshot,
    ScreenshotRequest,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiAuthError",
    "ApiConflict",
    "ApiError",
    "ApiInvalidRequest",
    "ApiNotFound",
    "ApiRateLimited",
    "ApiUnavailable",
    "AsyncClient",
    "Backoff",
    "Client",
    "JobFailed",
    "JobWaitTimeout",
]

with contextlib.suppress(ImportError):  # the Standard Webhooks verifier, with the webhook code
    from shotline.webhooks import verify as verify

#: Where ``shotline dev`` and ``docker compose up`` serve the API.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
#: Default seconds ``wait`` and ``capture`` give a job.
DEFAULT_WAIT_SECONDS = 120.0

_M = TypeVar("_M", bound=BaseModel)

_ERROR_BY_STATUS: dict[int, type[ApiError]] = {
    httpx.codes.UNAUTHORIZED: ApiAuthError,
    httpx.codes.FORBIDDEN: ApiAuthError,
    httpx.codes.NOT_FOUND: ApiNotFound,
    httpx.codes.CONFLICT: ApiConflict,
    httpx.codes.PAYMENT_REQUIRED: ApiRateLimited,
    httpx.codes.TOO_MANY_REQUESTS: ApiRateLimited,
}
_AUTH_HEADERS = ("authorization", "x-api-key")
_KNOWN_OPTIONS = frozenset(CaptureOptions.model_fields)


class Backoff:
    """Delays between polls: ``initial`` seconds, growing by ``factor`` up to ``maximum``."""

    def __init__(self, initial: float = 0.2, maximum: float = 2.0, factor: float = 1.5) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next_delay(self, *, remaining: float, retry_after: float | None = None) -> float:
        """The next delay, never past the deadline; ``Retry-After`` wins when larger."""
        delay = max(self._next, retry_after or 0.0)
        self._next = min(self._next * self.factor, self.maximum)
        return max(0.0, min(delay, remaining))


# --- Pure helpers shared by both clients ----------------------------------------------


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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
               retry_after=_retry_after(response))


def _unreachable(exc: httpx.TransportError) -> ApiUnavailable:
    return ApiUnavailable(f"{type(exc).__name__}: {exc}", code="connection_error")


def _without_unknown_options(data: Any) -> Any:
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


def _parse(model: type[_M], response: httpx.Response) -> _M:
    if response.is_error:
        raise api_error(response)
    return model.model_validate(_without_unknown_options(response.json()))


def capture_body(url: str | ScreenshotRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of a capture: a :class:`ScreenshotRequest` or a URL plus fields.

    Plain fields go to the server as given (the server validates them), so a client can use
    fields its own version does not know yet.
    """
    if isinstance(url, ScreenshotRequest):
        return {**url.model_dump(mode="json", exclude_unset=True), **options}
    return {"url": url, **options}


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"shotline-python/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _same_origin(url: httpx.URL, base: httpx.URL) -> bool:
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)


def _download_request(http: httpx.Client | httpx.AsyncClient, url: str) -> httpx.Request:
    """A GET of a result URL; the API key is only sent to the API's own origin (never to S3)."""
    request = http.build_request("GET", url, headers={"Accept": "*/*"})
    if not _same_origin(request.url, http.base_url):
        for name in _AUTH_HEADERS:
            request.headers.pop(name, None)
    return request


def _result_url(job: JobView) -> str:
    if job.result is None:
        raise ApiConflict(f"job {job.id} is {job.status.value}; it has no result to download",
                          code="job_not_finished")
    return job.result.url


def _checked(job: JobView, response: httpx.Response) -> bytes:
    if response.is_error:
        raise api_error(response)
    content = response.content
    assert job.result is not None
    if hashlib.sha256(content).hexdigest() != job.result.sha256:
        raise ApiError(f"download of job {job.id} does not match its sha256",
                       code="checksum_mismatch", status=response.status_code)
    return content


def _failed(job: JobView) -> JobFailed:
    error = job.error
    detail = f"{error.code}: {error.message}" if error else "no error recorded"
    return JobFailed(f"job {job.id} failed ({detail})", job=job,
                     error_code=error.code if error else None)


def _still_running(job_id: str, timeout: float, last: JobView | None) -> JobWaitTimeout:
    state = last.status.value if last else "unknown"
    return JobWaitTimeout(f"job {job_id} is still {state} after {timeout:g}s")


def _pollable(exc: ApiError) -> bool:
    """Errors that a wait outlives: the API or its Redis briefly down, or rate limiting."""
    return isinstance(exc, ApiUnavailable | ApiRateLimited)


def _job_id(job: str | Accepted | JobView) -> str:
    return job if isinstance(job, str) else job.id


# --- The synchronous client ------------------------------------------------------------


class Client:
    """A synchronous Shotline client. Use it as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=_headers(api_key),
                                  timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(exc) from exc

    def submit(self, url: str | ScreenshotRequest, *, idempotency_key: str | None = None,
               **options: Any) -> Accepted:
        """Queue a capture of ``url`` with request fields ``options`` (``full_page=True``...)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return _parse(Accepted, self._send("POST", "/v1/screenshots",
                                           json=capture_body(url, options), headers=headers))

    def get(self, job: str | Accepted | JobView) -> JobView:
        """The job's current record."""
        return _parse(JobView, self._send("GET", f"/v1/jobs/{_job_id(job)}"))

    def wait(self, job: str | Accepted | JobView, *, timeout: float = DEFAULT_WAIT_SECONDS,
             backoff: Backoff | None = None) -> JobView:
        """Poll until the job has succeeded or failed and return its record.

        Polls back off from 0.2 s to 2 s; brief outages (503, 429, connection errors) are
        waited out. :class:`JobWaitTimeout` after ``timeout`` seconds.
        """
        job_id, backoff = _job_id(job), backoff or Backoff()
        deadline, last = time.monotonic() + timeout, None
        while True:
            retry_after = None
            try:
                last = self.get(job_id)
                if last.status.is_terminal:
                    return last
            except ApiError as exc:
                if not _pollable(exc):
                    raise
                retry_after = exc.retry_after
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _still_running(job_id, timeout, last)
            time.sleep(backoff.next_delay(remaining=remaining, retry_after=retry_after))

    def download(self, job: str | Accepted | JobView) -> bytes:
        """The result's bytes (checked against its sha256); the job must have succeeded."""
        view = job if isinstance(job, JobView) and job.result is not None else self.get(_job_id(job))
        try:
            response = self._http.send(_download_request(self._http, _result_url(view)),
                                       follow_redirects=True)
        except httpx.TransportError as exc:
            raise _unreachable(exc) from exc
        return _checked(view, response)

    def capture(self, url: str | ScreenshotRequest, *, timeout: float = DEFAULT_WAIT_SECONDS,
                **options: Any) -> Screenshot:
        """Submit, wait and download: the finished :class:`Screenshot`.

        :class:`JobFailed` when the job fails, :class:`JobWaitTimeout` when it takes longer
        than ``timeout`` seconds.
        """
        view = self.wait(self.submit(url, **options), timeout=timeout)
        if view.status is not JobStatus.succeeded:
            raise _failed(view)
        return Screenshot(job=view, content=self.download(view))

    def list_jobs(self, *, limit: int = 20) -> list[JobView]:
        """The caller's most recent jobs, newest first."""
        return _parse(JobList, self._send("GET", "/v1/jobs", params={"limit": limit})).jobs

    def submit_many(self, urls: Iterable[str], **options: Any) -> list[Accepted]:
        """Queue one capture per URL with the same ``options`` (one request each)."""
        return [self.submit(url, **options) for url in urls]

    def wait_many(self, jobs: Sequence[str | Accepted | JobView], *,
                  timeout: float = DEFAULT_WAIT_SECONDS) -> list[JobView]:
        """Wait for all ``jobs`` (within one shared ``timeout``); records in the same order."""
        deadline = time.monotonic() + timeout
        return [self.wait(job, timeout=max(0.0, deadline - time.monotonic())) for job in jobs]

    def submit_batch(self, urls: Sequence[str], **options: Any) -> BatchAccepted:
        """``POST /v1/batches``: up to 100 URLs sharing ``options``, tracked as one batch."""
        return _parse(BatchAccepted, self._send("POST", "/v1/batches",
                                                json={"urls": list(urls), **options}))

    def get_batch(self, batch_id: str) -> Batch:
        """A batch's counts per status and its jobs."""
        return _parse(Batch, self._send("GET", f"/v1/batches/{batch_id}"))

    def wait_batch(self, batch_id: str, *, timeout: float = DEFAULT_WAIT_SECONDS,
                   backoff: Backoff | None = None) -> Batch:
        """Poll a batch until all its jobs are finished."""
        backoff, deadline = backoff or Backoff(), time.monotonic() + timeout
        while not (batch := self.get_batch(batch_id)).done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobWaitTimeout(f"batch {batch_id} is not finished after {timeout:g}s")
            time.sleep(backoff.next_delay(remaining=remaining))
        return batch


# --- The asynchronous client -----------------------------------------------------------


class AsyncClient:
    """An asyncio Shotline client with the same methods as :class:`Client`, awaitable."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 8,
    ) -> None:
        self.api_key = api_key
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=_headers(api_key),
                                       timeout=timeout, transport=transport)
        self._max_concurrency = max_concurrency

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(exc) from exc

    async def submit(self, url: str | ScreenshotRequest, *, idempotency_key: str | None = None,
                     **options: Any) -> Accepted:
        """Queue a capture of ``url`` with request fields ``options``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return _parse(Accepted, await self._send("POST", "/v1/screenshots",
                                                 json=capture_body(url, options), headers=headers))

    async def get(self, job: str | Accepted | JobView) -> JobView:
        """The job's current record."""
        return _parse(JobView, await self._send("GET", f"/v1/jobs/{_job_id(job)}"))

    async def wait(self, job: str | Accepted | JobView, *, timeout: float = DEFAULT_WAIT_SECONDS,
                   backoff: Backoff | None = None) -> JobView:
        """Poll until the job has succeeded or failed (see :meth:`Client.wait`)."""
        job_id, backoff = _job_id(job), backoff or Backoff()
        deadline, last = time.monotonic() + timeout, None
        while True:
            retry_after = None
            try:
                last = await self.get(job_id)
                if last.status.is_terminal:
                    return last
            except ApiError as exc:
                if not _pollable(exc):
                    raise
                retry_after = exc.retry_after
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _still_running(job_id, timeout, last)
            await asyncio.sleep(backoff.next_delay(remaining=remaining, retry_after=retry_after))

    async def download(self, job: str | Accepted | JobView) -> bytes:
        """The result's bytes (checked against its sha256); the job must have succeeded."""
        view = (job if isinstance(job, JobView) and job.result is not None
                else await self.get(_job_id(job)))
        try:
            response = await self._http.send(_download_request(self._http, _result_url(view)),
                                             follow_redirects=True)
        except httpx.TransportError as exc:
            raise _unreachable(exc) from exc
        return _checked(view, response)

    async def capture(self, url: str | ScreenshotRequest, *,
                      timeout: float = DEFAULT_WAIT_SECONDS, **options: Any) -> Screenshot:
        """Submit, wait and download (see :meth:`Client.capture`)."""
        view = await self.wait(await self.submit(url, **options), timeout=timeout)
        if view.status is not JobStatus.succeeded:
            raise _failed(view)
        return Screenshot(job=view, content=await self.download(view))

    async def list_jobs(self, *, limit: int = 20) -> list[JobView]:
        """The caller's most recent jobs, newest first."""
        response = await self._send("GET", "/v1/jobs", params={"limit": limit})
        return _parse(JobList, response).jobs

    async def submit_many(self, urls: Iterable[str], **options: Any) -> list[Accepted]:
        """Queue one capture per URL, at most ``max_concurrency`` requests in flight."""
        limit = asyncio.Semaphore(self._max_concurrency)

        async def one(url: str) -> Accepted:
            async with limit:
                return await self.submit(url, **options)

        return list(await asyncio.gather(*(one(url) for url in urls)))

    async def wait_many(self, jobs: Sequence[str | Accepted | JobView], *,
                        timeout: float = DEFAULT_WAIT_SECONDS) -> list[JobView]:
        """Wait for all ``jobs`` concurrently; records in the same order."""
        return list(await asyncio.gather(*(self.wait(job, timeout=timeout) for job in jobs)))

    async def submit_batch(self, urls: Sequence[str], **options: Any) -> BatchAccepted:
        """``POST /v1/batches``: up to 100 URLs sharing ``options``, tracked as one batch."""
        response = await self._send("POST", "/v1/batches", json={"urls": list(urls), **options})
        return _parse(BatchAccepted, response)

    async def get_batch(self, batch_id: str) -> Batch:
        """A batch's counts per status and its jobs."""
        return _parse(Batch, await self._send("GET", f"/v1/batches/{batch_id}"))

    async def wait_batch(self, batch_id: str, *, timeout: float = DEFAULT_WAIT_SECONDS,
                         backoff: Backoff | None = None) -> Batch:
        """Poll a batch until all its jobs are finished."""
        backoff, deadline = backoff or Backoff(), time.monotonic() + timeout
        while not (batch := await self.get_batch(batch_id)).done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobWaitTimeout(f"batch {batch_id} is not finished after {timeout:g}s")
            await asyncio.sleep(backoff.next_delay(remaining=remaining))
        return batch

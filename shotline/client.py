"""Python client of the Shotline HTTP API, on httpx: :class:`Client` and :class:`AsyncClient`.

>>> from shotline.client import Client
>>> with Client("http://127.0.0.1:8000", api_key="...") as shotline:
...     shot = shotline.capture("https://example.com", full_page=True)
...     shot.save("example.png")

Both clients offer the same methods: ``submit``, ``get``, ``wait``, ``download``, ``capture``
(submit + wait + download), ``list_jobs``, ``delete``, ``submit_many``/``wait_many`` and the batch helpers
``submit_batch``/``get_batch``/``wait_batch``. Errors of the API become exceptions of
:mod:`shared.errors` (all :class:`~shared.errors.ApiError`) carrying its ``code``, ``message``
and ``request_id``; a job that ends ``failed`` raises :class:`~shotline.errors.JobFailed` from
``capture``. Importing this module does not import the server side (FastAPI, Celery, Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

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
from shotline.models import (
    Accepted,
    Batch,
    BatchAccepted,
    JobList,
    JobStatus,
    JobView,
    Screenshot,
    ScreenshotRequest,
)
from shotline.monitors import AsyncMonitors, Monitors
from shotline.wire import (
    Backoff,
    base_url_from_environment,
    batch_body,
    capture_body,
    check_deleted,
    checked_content,
    default_headers,
    download_request,
    job_failed,
    job_id_of,
    key_from_environment,
    parse_response,
    pollable,
    result_url,
    still_running,
    unreachable,
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

# --- The synchronous client ------------------------------------------------------------


class Client:
    """A synchronous Shotline client. Use it as a context manager, or call :meth:`close`.

    Without ``api_key`` it uses ``SHOTLINE_API_KEY`` or ``SHOTLINE_KEY`` from the environment,
    without ``base_url`` ``SHOTLINE_API_URL`` (else http://127.0.0.1:8000), as the CLI does.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_key = key_from_environment(api_key)
        self._http = httpx.Client(base_url=base_url_from_environment(base_url, DEFAULT_BASE_URL),
                                  headers=default_headers(self.api_key), timeout=timeout,
                                  transport=transport)
        #: The monitor endpoints (:mod:`shotline.monitors`).
        self.monitors = Monitors(self._send)

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
            raise unreachable(exc) from exc

    def submit(self, url: str | ScreenshotRequest, *, idempotency_key: str | None = None,
               **options: Any) -> Accepted:
        """Queue a capture of ``url`` with request fields ``options`` (``full_page=True``...)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return parse_response(Accepted, self._send("POST", "/v1/screenshots",
                                           json=capture_body(url, options), headers=headers))

    def get(self, job: str | Accepted | JobView) -> JobView:
        """The job's current record."""
        return parse_response(JobView, self._send("GET", f"/v1/jobs/{job_id_of(job)}"))

    def wait(self, job: str | Accepted | JobView, *, timeout: float = DEFAULT_WAIT_SECONDS,
             backoff: Backoff | None = None) -> JobView:
        """Poll until the job has succeeded or failed and return its record.

        Polls back off from 0.2 s to 2 s; brief outages (503, 429, connection errors) are
        waited out. :class:`JobWaitTimeout` after ``timeout`` seconds.
        """
        job_id, backoff = job_id_of(job), backoff or Backoff()
        deadline, last = time.monotonic() + timeout, None
        while True:
            retry_after = None
            try:
                last = self.get(job_id)
                if last.status.is_terminal:
                    return last
            except ApiError as exc:
                if not pollable(exc):
                    raise
                retry_after = exc.retry_after
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise still_running(job_id, timeout, last)
            time.sleep(backoff.next_delay(remaining=remaining, retry_after=retry_after))

    def download(self, job: str | Accepted | JobView) -> bytes:
        """The result's bytes (checked against its sha256); the job must have succeeded."""
        view = job if isinstance(job, JobView) and job.result is not None else self.get(job_id_of(job))
        try:
            response = self._http.send(download_request(self._http, result_url(view)),
                                       follow_redirects=True)
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return checked_content(view, response)

    def capture(self, url: str | ScreenshotRequest, *, timeout: float = DEFAULT_WAIT_SECONDS,
                **options: Any) -> Screenshot:
        """Submit, wait and download: the finished :class:`Screenshot`.

        :class:`JobFailed` when the job fails, :class:`JobWaitTimeout` when it takes longer
        than ``timeout`` seconds.
        """
        view = self.wait(self.submit(url, **options), timeout=timeout)
        if view.status is not JobStatus.succeeded:
            raise job_failed(view)
        return Screenshot(job=view, content=self.download(view))

    def list_jobs(self, *, limit: int = 20) -> list[JobView]:
        """The caller's most recent jobs, newest first."""
        return parse_response(JobList, self._send("GET", "/v1/jobs", params={"limit": limit})).jobs

    def delete(self, job: str | Accepted | JobView) -> None:
        """Delete the job's stored files and its record (a job already deleted is no error).

        :class:`ApiNotFound` for another key's job, :class:`ApiConflict` while it runs.
        """
        check_deleted(self._send("DELETE", f"/v1/jobs/{job_id_of(job)}"))

    def submit_many(self, urls: Iterable[str], **options: Any) -> list[Accepted]:
        """Queue one capture per URL with the same ``options`` (one request each)."""
        return [self.submit(url, **options) for url in urls]

    def wait_many(self, jobs: Sequence[str | Accepted | JobView], *,
                  timeout: float = DEFAULT_WAIT_SECONDS) -> list[JobView]:
        """Wait for all ``jobs`` (within one shared ``timeout``); records in the same order."""
        deadline = time.monotonic() + timeout
        return [self.wait(job, timeout=max(0.0, deadline - time.monotonic())) for job in jobs]

    def submit_batch(self, urls: Sequence[str], *, webhook_url: str | None = None,
                     **options: Any) -> BatchAccepted:
        """``POST /v1/batches``: up to 100 URLs sharing ``options``, tracked as one batch
        (``webhook_url`` is called once when all are done)."""
        return parse_response(BatchAccepted, self._send("POST", "/v1/batches",
                                                        json=batch_body(urls, webhook_url, options)))

    def get_batch(self, batch_id: str) -> Batch:
        """A batch's counts per status and its jobs."""
        return parse_response(Batch, self._send("GET", f"/v1/batches/{batch_id}"))

    def wait_batch(self, batch_id: str, *, timeout: float = DEFAULT_WAIT_SECONDS,
                   backoff: Backoff | None = None) -> Batch:
        """Poll a batch until all its jobs are finished."""
        backoff, deadline = backoff or Backoff(), time.monotonic() + timeout
        while not (batch := self.get_batch(batch_id)).finished:
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
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 8,
    ) -> None:
        self.api_key = key_from_environment(api_key)
        self._http = httpx.AsyncClient(
            base_url=base_url_from_environment(base_url, DEFAULT_BASE_URL),
            headers=default_headers(self.api_key), timeout=timeout, transport=transport)
        self._max_concurrency = max_concurrency
        #: The monitor endpoints (:mod:`shotline.monitors`).
        self.monitors = AsyncMonitors(self._send)

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
            raise unreachable(exc) from exc

    async def submit(self, url: str | ScreenshotRequest, *, idempotency_key: str | None = None,
                     **options: Any) -> Accepted:
        """Queue a capture of ``url`` with request fields ``options``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return parse_response(Accepted, await self._send("POST", "/v1/screenshots",
                                                 json=capture_body(url, options), headers=headers))

    async def get(self, job: str | Accepted | JobView) -> JobView:
        """The job's current record."""
        return parse_response(JobView, await self._send("GET", f"/v1/jobs/{job_id_of(job)}"))

    async def wait(self, job: str | Accepted | JobView, *, timeout: float = DEFAULT_WAIT_SECONDS,
                   backoff: Backoff | None = None) -> JobView:
        """Poll until the job has succeeded or failed (see :meth:`Client.wait`)."""
        job_id, backoff = job_id_of(job), backoff or Backoff()
        deadline, last = time.monotonic() + timeout, None
        while True:
            retry_after = None
            try:
                last = await self.get(job_id)
                if last.status.is_terminal:
                    return last
            except ApiError as exc:
                if not pollable(exc):
                    raise
                retry_after = exc.retry_after
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise still_running(job_id, timeout, last)
            await asyncio.sleep(backoff.next_delay(remaining=remaining, retry_after=retry_after))

    async def download(self, job: str | Accepted | JobView) -> bytes:
        """The result's bytes (checked against its sha256); the job must have succeeded."""
        view = (job if isinstance(job, JobView) and job.result is not None
                else await self.get(job_id_of(job)))
        try:
            response = await self._http.send(download_request(self._http, result_url(view)),
                                             follow_redirects=True)
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return checked_content(view, response)

    async def capture(self, url: str | ScreenshotRequest, *,
                      timeout: float = DEFAULT_WAIT_SECONDS, **options: Any) -> Screenshot:
        """Submit, wait and download (see :meth:`Client.capture`)."""
        view = await self.wait(await self.submit(url, **options), timeout=timeout)
        if view.status is not JobStatus.succeeded:
            raise job_failed(view)
        return Screenshot(job=view, content=await self.download(view))

    async def list_jobs(self, *, limit: int = 20) -> list[JobView]:
        """The caller's most recent jobs, newest first."""
        response = await self._send("GET", "/v1/jobs", params={"limit": limit})
        return parse_response(JobList, response).jobs

    async def delete(self, job: str | Accepted | JobView) -> None:
        """Delete the job's stored files and its record (see :meth:`Client.delete`)."""
        check_deleted(await self._send("DELETE", f"/v1/jobs/{job_id_of(job)}"))

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

    async def submit_batch(self, urls: Sequence[str], *, webhook_url: str | None = None,
                           **options: Any) -> BatchAccepted:
        """``POST /v1/batches``: up to 100 URLs sharing ``options``, tracked as one batch."""
        response = await self._send("POST", "/v1/batches",
                                    json=batch_body(urls, webhook_url, options))
        return parse_response(BatchAccepted, response)

    async def get_batch(self, batch_id: str) -> Batch:
        """A batch's counts per status and its jobs."""
        return parse_response(Batch, await self._send("GET", f"/v1/batches/{batch_id}"))

    async def wait_batch(self, batch_id: str, *, timeout: float = DEFAULT_WAIT_SECONDS,
                         backoff: Backoff | None = None) -> Batch:
        """Poll a batch until all its jobs are finished."""
        backoff, deadline = backoff or Backoff(), time.monotonic() + timeout
        while not (batch := await self.get_batch(batch_id)).finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobWaitTimeout(f"batch {batch_id} is not finished after {timeout:g}s")
            await asyncio.sleep(backoff.next_delay(remaining=remaining))
        return batch

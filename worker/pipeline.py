"""The capture pipeline: plain async code that takes one job from queued to its end.

Celery tasks call :func:`run_capture_job`; tests call it directly. Every dependency is
passed in, so the pipeline knows nothing of Celery or of where settings come from.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from dataclasses import dataclass
from typing import Protocol

import structlog
from PIL import Image

from shared.constants import RESULTS_PREFIX
from shared.errors import (
    CaptureError,
    CaptureUrlBlocked,
    JobNotFound,
    ResultNotStored,
    ResultTooLarge,
    StorageError,
    UrlBlocked,
)
from shared.jobs import ImageFormat, Job, JobError, JobStatus, StoredResult
from shared.status_store import StatusStore
from shared.storage.base import Storage
from shared.url_policy import UrlPolicy
from worker.engines.base import Capture, CaptureEngine

log = structlog.get_logger("shotline.pipeline")

#: Upper bound of the exponential backoff between capture attempts, in seconds.
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: a final status, or a delay after which to try again."""

    status: JobStatus | None
    retry_in: float | None = None


class JobListener(Protocol):
    """Told about every job that reaches a final status (webhooks, cache, metrics...)."""

    async def job_finished(self, job: Job) -> None:
        """React to ``job`` having just become succeeded or failed (called once per outcome)."""
        ...


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    """Everything the pipeline needs, built once per worker process."""

    store: StatusStore
    engine: CaptureEngine
    storage: Storage
    policy: UrlPolicy
    max_attempts: int
    max_result_bytes: int
    listeners: tuple[JobListener, ...] = ()
    #: Idempotent listeners told again when a redelivered task finds its job already
    #: finished: the worker that finished it may have died before they heard of it.
    renotify: tuple[JobListener, ...] = ()


def result_key(job: Job) -> str:
    """Storage key of a job's result; the same on every attempt, so redelivery overwrites."""
    return f"{RESULTS_PREFIX}{job.id}.{job.options.format.extension}"


def backoff_delay(attempt: int, *, base: float = 2.0) -> float:
    """Exponential backoff with full jitter for ``attempt`` (1-based), capped."""
    ceiling = min(MAX_BACKOFF_SECONDS, base * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def describe(capture: Capture, key: str, fmt: ImageFormat) -> StoredResult:
    """The result record of ``capture``: size, digest and pixel dimensions (images only)."""
    width = height = None
    if fmt is not ImageFormat.pdf:
        with Image.open(io.BytesIO(capture.data)) as image:  # reads the header only
            width, height = image.size
    return StoredResult(
        key=key,
        content_type=capture.content_type,
        bytes=len(capture.data),
        width=width,
        height=height,
        sha256=hashlib.sha256(capture.data).hexdigest(),
    )


async def run_capture_job(job_id: str, deps: PipelineDeps) -> Outcome:
    """Run one attempt of ``job_id``: capture, store, record the outcome.

    Never raises for capture problems: a retryable failure with attempts left returns a
    retry delay (the job goes back to ``queued``); anything else ends the job ``failed``
    with a specific ``error.code``. A job that already finished is left alone.
    """
    job = await deps.store.mark_running(job_id)
    if job is None:
        await _renotify(deps, job_id)
        return Outcome(status=None)
    bound = log.bind(job_id=job.id, request_id=job.request_id, url=job.options.url,
                     attempt=job.attempts, engine=deps.engine.name)
    bound.info("job running")
    started = time.perf_counter()
    try:
        await deps.policy.acheck_url(job.options.url)
        capture = await deps.engine.capture(job.options, request_id=job.request_id)
        if len(capture.data) > deps.max_result_bytes:
            raise ResultTooLarge(
                f"result is {len(capture.data)} bytes, above the limit of {deps.max_result_bytes}"
            )
        key = result_key(job)
        result = describe(capture, key, job.options.format)
        await deps.storage.put(key, capture.data, content_type=capture.content_type)
    except UrlBlocked as exc:
        return await _fail(deps, job, CaptureUrlBlocked(exc.message), started)
    except CaptureError as exc:
        return await _fail(deps, job, exc, started)
    except StorageError as exc:
        return await _fail(deps, job, ResultNotStored(f"could not store the result: {exc.message}"),
                           started)
    except Exception as exc:  # a bug must still end the job, never leave it running
        bound.exception("capture crashed unexpectedly")
        return await _fail(deps, job, CaptureError(f"unexpected error: {type(exc).__name__}"),
                           started)
    duration_ms = round((time.perf_counter() - started) * 1000)
    finished = await deps.store.mark_succeeded(job.id, result)
    if finished is None:
        bound.info("job finished elsewhere meanwhile; result kept", duration_ms=duration_ms)
        return Outcome(status=None)
    bound.info("job succeeded", duration_ms=duration_ms, bytes=result.bytes,
               status=JobStatus.succeeded.value)
    await _notify(deps, finished)
    return Outcome(status=JobStatus.succeeded)


async def _renotify(deps: PipelineDeps, job_id: str) -> None:
    """A redelivered task found ``job_id`` finished: tell the idempotent ``renotify``
    listeners again, in case the worker that finished it died before they heard of it."""
    try:
        job = await deps.store.get(job_id)
    except JobNotFound:
        log.info("job gone; nothing to do", job_id=job_id)
        return
    log.info("job already finished; telling idempotent listeners again", job_id=job_id,
             status=job.status.value)
    if job.status.is_terminal:
        await _notify(deps, job, deps.renotify)


async def _notify(deps: PipelineDeps, job: Job,
                  listeners: tuple[JobListener, ...] | None = None) -> None:
    """Tell every listener that ``job`` finished; one failing listener does not stop the rest."""
    for listener in deps.listeners if listeners is None else listeners:
        try:
            await listener.job_finished(job)
        except Exception:
            log.exception("job listener failed", job_id=job.id, listener=type(listener).__name__)


async def _fail(deps: PipelineDeps, job: Job, exc: CaptureError, started: float) -> Outcome:
    duration_ms = round((time.perf_counter() - started) * 1000)
    error = JobError(code=exc.code, message=exc.message, status=exc.status)
    bound = log.bind(job_id=job.id, request_id=job.request_id, error_code=exc.code,
                     duration_ms=duration_ms, attempt=job.attempts)
    if exc.retryable and job.attempts < deps.max_attempts:
        delay = min(MAX_BACKOFF_SECONDS, exc.retry_after or backoff_delay(job.attempts))
        await deps.store.mark_retrying(job.id, error)
        bound.info("job attempt failed; retrying", retry_in=round(delay, 2), error=exc.message)
        return Outcome(status=None, retry_in=delay)
    finished = await deps.store.mark_failed(job.id, error)
    if finished is None:
        bound.info("job finished elsewhere meanwhile")
        return Outcome(status=None)
    bound.info("job failed", error=exc.message, status=JobStatus.failed.value)
    await _notify(deps, finished)
    return Outcome(status=JobStatus.failed)

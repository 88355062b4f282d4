"""Synchronous captures: wait for a job, then stream its result from storage.

Waiting polls the job's record in Redis, quickly at first and then every 250 ms (one small
read per poll; no subscription to keep per request). The image is streamed from storage
chunk by chunk, never held whole in the API.
"""

from __future__ import annotations

import time

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.errors import error_response
from api.idempotency import JOB_ID_HEADER
from api.services import Services, get_owned_job
from api.streaming import open_stream
from shared.errors import WaitTimeout
from shared.jobs import CaptureOptions, Job, JobError, JobStatus
from shared.principal import Principal
from shared.storage.destinations import storage_for

#: Time allowed beyond a request's ``timeout_ms`` for queueing and storing.
WAIT_MARGIN_SECONDS = 5.0
#: Longest pause between two attempts of a timed-out capture (the worker's backoff for the
#: at most three ``retries``: up to 2, 4 and 8 s).
RETRY_PAUSE_SECONDS = 10.0
_FIRST_POLL, _MAX_POLL = 0.02, 0.25


def wait_seconds(options: CaptureOptions) -> float:
    """How long a synchronous capture waits: every attempt the request allows (one, plus its
    ``retries``), the pauses between them, and a margin for queueing and storing."""
    attempts = options.retries + 1
    return (attempts * options.timeout_ms / 1000 + options.retries * RETRY_PAUSE_SECONDS
            + WAIT_MARGIN_SECONDS)


async def wait_for_job(services: Services, principal: Principal, job_id: str, *,
                       timeout: float) -> Job:
    """The job once it succeeded or failed; :class:`WaitTimeout` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = _FIRST_POLL
    while True:
        job = await get_owned_job(services, principal, job_id)
        if job.status.is_terminal:
            return job
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(
                f"The capture did not finish within {timeout:.0f} s; it goes on: poll"
                f" /v1/jobs/{job_id}.", job_id=job_id,
            )
        await anyio.sleep(min(delay, left))
        delay = min(delay * 2, _MAX_POLL)


def failure_status(error: JobError) -> int:
    """The HTTP status a failed synchronous capture answers with.

    An engine's upstream status (SnapAPI's 402, 429, 503...) is forwarded, except 401, which
    would tell the caller that *its* key is wrong (it is the server's engine key); the target
    page's own error status and other failures are 502, a timeout 504.
    """
    if error.code == "timeout":
        return 504
    if error.code in ("url_blocked", "selector_not_found"):
        return 422
    if error.code == "ffmpeg_missing":
        return 503  # the worker lacks ffmpeg for scroll videos: a service problem, named
    if error.code in ("engine_rejected", "engine_error") and error.status is not None:
        return 502 if error.status == 401 or not 400 <= error.status <= 599 else error.status
    return 502


async def capture_response(request: Request, services: Services, job: Job
                           ) -> StreamingResponse | JSONResponse:
    """The finished ``job`` as an HTTP answer: its image streamed, or its error as JSON."""
    headers = {JOB_ID_HEADER: job.id, "X-Shotline-Cached": "true" if job.cached else "false"}
    if job.status is not JobStatus.succeeded or job.result is None:
        error = job.error or JobError(code="engine_error", message="the capture failed")
        detail: dict[str, object] = {"job_id": job.id}
        if error.status is not None:
            detail["upstream_status"] = error.status
        return error_response(request, failure_status(error), error.code, error.message,
                              details=[detail], headers=headers)
    result = job.result
    body = await open_stream(storage_for(services.storage, result.destination), result.key,
                             missing=f"the result of job {job.id} is no longer stored")
    headers["Content-Length"] = str(result.bytes)
    return StreamingResponse(body, media_type=result.content_type, headers=headers)

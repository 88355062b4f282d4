"""What the routes call: submitting captures and reading jobs, free of HTTP details."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import anyio.to_thread
import redis.asyncio as aioredis
import structlog
from celery import Celery

from api.schemas import JobView, ResultView
from shared.errors import JobNotFinished, StoreUnavailable
from shared.jobs import CaptureOptions, Job, JobStatus, ScreenshotRequest, new_job_id, utcnow
from shared.queue import enqueue_capture
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.storage.base import Storage
from shared.url_policy import UrlPolicy
from worker.engines import check_engine_supports

log = structlog.get_logger("shotline.api")


@dataclass(frozen=True, slots=True)
class Services:
    """The API process's long-lived clients, built once in the app's lifespan."""

    settings: Settings
    redis: aioredis.Redis
    store: StatusStore
    storage: Storage
    celery: Celery
    policy: UrlPolicy


async def submit_capture(
    services: Services, request: ScreenshotRequest, *, request_id: str | None
) -> Job:
    """Check the URL, record a queued job and enqueue its capture."""
    await services.policy.acheck_url(request.url)
    options = CaptureOptions.model_validate(request.model_dump(include=set(CaptureOptions.model_fields)))
    check_engine_supports(services.settings.engine, options)
    job = Job(
        id=new_job_id(),
        status=JobStatus.queued,
        created_at=utcnow(),
        options=options,
        request_id=request_id,
    )
    await services.store.create(job)
    try:
        await anyio.to_thread.run_sync(
            functools.partial(enqueue_capture, services.celery, job.id, request_id=request_id)
        )
    except Exception as exc:
        await services.store.delete(job.id)
        raise StoreUnavailable(f"could not enqueue the job: {exc}") from exc
    log.info("job queued", job_id=job.id, request_id=request_id, url=options.url,
             status=JobStatus.queued.value)
    return job


def job_view(services: Services, job: Job) -> JobView:
    """The client-facing view of ``job``, with a fresh download URL when it succeeded."""
    result = None
    if job.result is not None and job.status is JobStatus.succeeded:
        signed = services.storage.signed_url(
            job.result.key, expires_in=services.settings.url_ttl_seconds
        )
        result = ResultView(
            url=signed.url,
            expires_at=signed.expires_at,
            **job.result.model_dump(exclude={"key"}),
        )
    return JobView(
        id=job.id,
        status=job.status,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        error=job.error,
        result=result,
        options=job.options.redacted(),
    )


async def recent_jobs(services: Services, *, api_key_id: str | None, limit: int) -> list[JobView]:
    """The owner's ``limit`` most recent jobs, newest first, as clients see them."""
    jobs = await services.store.recent(api_key_id, limit=limit)
    return [job_view(services, job) for job in jobs]


async def result_url(services: Services, job_id: str) -> str:
    """A fresh download URL for a succeeded job; :class:`JobNotFinished` otherwise."""
    job = await services.store.get(job_id)
    view = job_view(services, job)
    if view.result is None:
        detail = f"job {job_id} is {job.status.value}"
        if job.status is JobStatus.failed and job.error is not None:
            detail += f" ({job.error.code}: {job.error.message})"
        raise JobNotFinished(f"{detail}; no result to download")
    return view.result.url

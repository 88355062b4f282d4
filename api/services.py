"""What the routes call: submitting captures and reading jobs, free of HTTP details."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import anyio.to_thread
import redis.asyncio as aioredis
import structlog
from celery import Celery

from api.auth import Principal
from api.idempotency import IdempotencyStore
from api.ratelimit import QuotaCounter, RateLimiter
from api.schemas import JobView, ResultView
from shared.apikeys import KeyStore
from shared.batches import BatchStore
from shared.completion import Completion
from shared.errors import JobNotFinished, JobNotFound, StoreUnavailable
from shared.jobs import Job, JobStatus, ScreenshotRequest, new_job_id, utcnow
from shared.queue import enqueue_capture
from shared.result_cache import ResultCache, options_digest
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
    keys: KeyStore
    limiter: RateLimiter
    quota: QuotaCounter
    idempotency: IdempotencyStore
    cache: ResultCache
    batches: BatchStore
    completion: Completion


async def submit_capture(
    services: Services,
    request: ScreenshotRequest,
    *,
    principal: Principal,
    request_id: str | None,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> Job:
    """Check the URL and answer with a job: a cache hit (already succeeded, no capture), a
    follower of an identical capture in flight, or a new queued capture (charged to the
    key's monthly quota)."""
    await services.policy.acheck_url(request.url)
    options = request.capture_options()
    check_engine_supports(services.settings.engine, options)
    now = utcnow()
    job = Job(id=job_id or new_job_id(), status=JobStatus.queued, created_at=now, options=options,
              request_id=request_id, api_key_id=principal.key_id, batch_id=batch_id)
    bound = log.bind(job_id=job.id, request_id=request_id, url=options.url, api_key_id=job.api_key_id)
    ttl = services.settings.cache_ttl_seconds if request.cache_ttl is None else request.cache_ttl
    digest = options_digest(options) if ttl > 0 else None
    if digest is not None and not request.fresh:
        source = await services.cache.lookup(principal.owner, digest, max_age=ttl)
        if source is not None:
            job = job.model_copy(update={
                "status": JobStatus.succeeded, "started_at": now, "finished_at": now,
                "result": source.result, "cached": True, "capture_of": source.id,
            })
            await services.store.create(job)
            bound.info("job answered from the result cache", capture_of=source.id,
                       status=job.status.value)
            await services.completion.settled(job)
            return job
    await services.quota.charge(principal)
    await services.store.create(job)
    if digest is not None:
        leader = await services.cache.lead_or_join(principal.owner, digest, job.id)
        if leader is not None:
            await services.quota.refund(principal)
            bound.info("job shares a capture in flight", capture_of=leader,
                       status=JobStatus.queued.value)
            return job.model_copy(update={"cached": True, "capture_of": leader})
    try:
        await anyio.to_thread.run_sync(
            functools.partial(enqueue_capture, services.celery, job.id, request_id=request_id)
        )
    except Exception as exc:
        await services.store.delete(job.id)
        await services.quota.refund(principal)
        raise StoreUnavailable(f"could not enqueue the job: {exc}") from exc
    bound.info("job queued", status=JobStatus.queued.value)
    return job


async def get_owned_job(services: Services, principal: Principal, job_id: str) -> Job:
    """``job_id`` if ``principal`` owns it (:class:`JobNotFound` otherwise: another key's
    job does not exist for this caller); a follower whose capture ended is settled here."""
    job = await services.store.get(job_id)
    if job.api_key_id != principal.key_id:
        raise JobNotFound(f"no job with id {job_id!r}")
    return await services.completion.repair(job)


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
        cached=job.cached,
        batch_id=job.batch_id,
    )


async def result_url(services: Services, principal: Principal, job_id: str) -> str:
    """A fresh download URL for a succeeded job; :class:`JobNotFinished` otherwise."""
    job = await get_owned_job(services, principal, job_id)
    view = job_view(services, job)
    if view.result is None:
        detail = f"job {job_id} is {job.status.value}"
        if job.status is JobStatus.failed and job.error is not None:
            detail += f" ({job.error.code}: {job.error.message})"
        raise JobNotFinished(f"{detail}; no result to download")
    return view.result.url

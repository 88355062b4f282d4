"""What the routes call: submitting captures and reading jobs, free of HTTP details.

The webhook delivery routes' services live in :mod:`api.deliveries`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from celery import Celery

from api.idempotency import IdempotencyStore
from api.ratelimit import RateLimiter
from shared import correlation
from shared.apikeys import KeyStore
from shared.batches import BatchStore
from shared.completion import Completion
from shared.engine_capabilities import check_engine_supports
from shared.errors import (
    JobHasNoResult,
    JobNotFinished,
    JobNotFound,
    ResultGone,
    ShotlineError,
    StoreUnavailable,
    UrlBlocked,
    WebhookSecretMissing,
    WebhookUrlBlocked,
)
from shared.fair_queue import FairQueue
from shared.inputs import check_input, input_kind
from shared.job_view import JobView, render_job
from shared.jobs import Job, JobStatus, ScreenshotRequest, new_job_id, utcnow
from shared.metrics import SubmitOutcome, record_cache_lookup, record_job_submitted
from shared.principal import Principal
from shared.quota import QuotaCounter
from shared.result_cache import ResultCache, options_digest
from shared.retention import RetentionIndex, delete_job, shared_result_gone
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.storage.base import Storage
from shared.storage.destinations import router_of
from shared.url_policy import UrlPolicy
from shared.webhooks.secrets import WebhookSecrets
from shared.webhooks.store import DeliveryStore

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
    fair: FairQueue
    batches: BatchStore
    completion: Completion
    deliveries: DeliveryStore
    webhook_secrets: WebhookSecrets


async def submit_capture(
    services: Services,
    request: ScreenshotRequest,
    *,
    principal: Principal,
    request_id: str | None,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> Job:
    """:func:`answer_submit`, counted in ``shotline_jobs_submitted_total`` by outcome."""
    engine, fmt = services.settings.engine, request.format.value
    try:
        job = await answer_submit(services, request, principal=principal, request_id=request_id,
                                  job_id=job_id, batch_id=batch_id)
    except StoreUnavailable:
        raise  # not a refusal: the client is told to try again
    except ShotlineError as exc:
        record_job_submitted("refused", reason=exc.code, engine=engine, format=fmt)
        raise
    outcome: SubmitOutcome = (
        ("cached" if job.status is JobStatus.succeeded else "shared") if job.cached else "queued")
    record_job_submitted(outcome, engine=engine, format=fmt)
    return job


async def answer_submit(
    services: Services,
    request: ScreenshotRequest,
    *,
    principal: Principal,
    request_id: str | None,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> Job:
    """Check the URL (and webhook URL) and answer with a job: a cache hit (already succeeded, no capture), a
    follower of an identical capture in flight, or a new queued capture (charged to the
    key's monthly quota)."""
    options = request.capture_options()
    await check_input(services.policy, options, max_html_bytes=services.settings.max_html_bytes)
    check_engine_supports(services.settings.engine, options)
    now = utcnow()
    job = Job(id=job_id or new_job_id(), status=JobStatus.queued, created_at=now, options=options,
              request_id=request_id, api_key_id=principal.key_id, batch_id=batch_id,
              traceparent=correlation.current().get(correlation.TRACEPARENT))
    if request.webhook_url is not None:
        webhook_url = await check_webhook(services, request.webhook_url, api_key_id=job.api_key_id)
        job = job.model_copy(update={"webhook_url": webhook_url})
    bound = log.bind(job_id=job.id, request_id=request_id, url=options.url,
                     input=input_kind(options).value, api_key_id=job.api_key_id)
    ttl = services.settings.cache_ttl_seconds if request.cache_ttl is None else request.cache_ttl
    digest = options_digest(options) if ttl > 0 else None
    if digest is not None and not request.fresh:
        source = await services.cache.lookup(principal.owner, digest, max_age=ttl)
        record_cache_lookup(hit=source is not None)
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
    # One atomic round trip: the record, single-flight, and the job's place in its owner's
    # waiting list; a dispatcher in the workers releases it to Celery when its turn comes.
    try:
        leader = await services.fair.submit(job, digest=digest)
    except StoreUnavailable:
        with contextlib.suppress(StoreUnavailable):
            await services.quota.refund(principal)
        raise
    if leader is not None:
        await services.quota.refund(principal)
        bound.info("job shares a capture in flight", capture_of=leader,
                   status=JobStatus.queued.value)
        return job.model_copy(update={"cached": True, "capture_of": leader})
    bound.info("job queued", status=JobStatus.queued.value)
    return job


async def get_owned_job(services: Services, principal: Principal, job_id: str) -> Job:
    """``job_id`` if ``principal`` owns it (:class:`JobNotFound` otherwise: another key's
    job does not exist for this caller); a follower whose capture ended is settled here."""
    job = await services.store.get(job_id)
    if job.api_key_id != principal.key_id:
        raise JobNotFound(f"no job with id {job_id!r}")
    return await shared_result_gone(services.store, await services.completion.repair(job))


async def check_webhook(services: Services, url: str, *, api_key_id: str | None) -> str:
    """The normalised ``url`` once the URL policy accepts it and a secret exists to sign with.

    Raises :class:`WebhookUrlBlocked` or :class:`WebhookSecretMissing` (both 422).
    """
    try:
        checked = await services.policy.acheck_url(url)
    except UrlBlocked as exc:
        raise WebhookUrlBlocked(f"webhook_url: {exc.message}") from exc
    if not await services.webhook_secrets.signing_keys(api_key_id):
        where = ("this API key has no webhook secret" if api_key_id else
                 "the server has no SHOTLINE_WEBHOOK_SECRET (generate one with"
                 " `python -c 'import shotline.webhooks as w; print(w.generate_secret())'`)")
        raise WebhookSecretMissing(f"webhook_url needs a signing secret, but {where}")
    return checked.url


def job_view(services: Services, job: Job) -> JobView:
    """The client-facing view of ``job``, with a fresh download URL when it succeeded."""
    return render_job(job, services.storage, url_ttl_seconds=services.settings.url_ttl_seconds)


async def recent_jobs(services: Services, *, api_key_id: str | None, limit: int) -> list[JobView]:
    """The owner's ``limit`` most recent jobs, newest first, as clients see them."""
    jobs = await services.store.recent(api_key_id, limit=limit)
    return [job_view(services, job) for job in jobs]


async def result_url(services: Services, principal: Principal, job_id: str) -> str:
    """A fresh download URL for a succeeded job; :class:`JobNotFinished` otherwise."""
    job = await get_owned_job(services, principal, job_id)
    if job.result_expired_at is not None:
        shared = f", or job {job.capture_of} whose capture it shared was deleted" if job.capture_of else ""
        raise ResultGone(f"the result of job {job_id} was deleted on"
                         f" {job.result_expired_at.isoformat()}: its retention period ended{shared}")
    view = job_view(services, job)
    if view.result is None:
        if job.status is JobStatus.failed:
            reason = f" ({job.error.code}: {job.error.message})" if job.error is not None else ""
            raise JobHasNoResult(
                f"job {job_id} failed{reason}, so it has no result to download;"
                " see GET /v1/jobs/{job_id} for why, or submit the capture again"
                .replace("{job_id}", job_id)
            )
        raise JobNotFinished(
            f"job {job_id} is still {job.status.value}; its result can be downloaded once it"
            f" has succeeded: poll GET /v1/jobs/{job_id} until status is succeeded"
        )
    return view.result.url


async def delete_owned_job(services: Services, principal: Principal, job_id: str) -> None:
    """Delete ``job_id``'s files and record if ``principal`` owns it; a job already gone is
    no error (DELETE is idempotent), another key's job is :class:`JobNotFound`."""
    try:
        job = await services.store.get(job_id)
    except JobNotFound:
        return
    if job.api_key_id != principal.key_id:
        raise JobNotFound(f"no job with id {job_id!r}")
    await delete_job(services.store, router_of(services.storage), RetentionIndex(services.redis),
                     job)


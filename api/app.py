"""The FastAPI application factory."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.idempotency import IdempotencyMiddleware, IdempotencyStore
from api.key_cache import CachedKeyStore
from api.metrics import install_metrics
from api.middleware import (
    BodySizeLimitMiddleware,
    RateLimitHeadersMiddleware,
    RequestIdMiddleware,
)
from api.ratelimit import QuotaCounter, RateLimiter
from api.routes import batches, console, files, health, jobs, render, screenshots, webhooks
from api.services import Services
from shared.batches import BatchStore
from shared.completion import Completion
from shared.connections import create_redis
from shared.fair_queue import FairQueue
from shared.inputs import request_body_limit
from shared.queue import enqueue_delivery, make_celery
from shared.result_cache import ResultCache
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.storage import make_storage
from shared.url_policy import UrlPolicy
from shared.webhooks.listener import WebhookListener
from shared.webhooks.secrets import WebhookSecrets
from shared.webhooks.store import DeliveryStore

DESCRIPTION = """Screenshots of web pages as a service: submit a capture (202 + job id),
poll the job, download the image from a time-limited URL."""


def build_services(settings: Settings) -> Services:
    """The API's clients (no I/O happens until they are used)."""
    # A burst beyond the pool waits up to a second for a free connection rather than
    # failing with 503 "Too many connections" (seen at 200 submits/s on two cores).
    redis = create_redis(settings.redis_url, wait_for_connection=1.0)
    store = StatusStore(redis, ttl_seconds=settings.job_ttl_seconds,
                        queued_deadline=settings.queued_deadline_seconds)
    cache = ResultCache(redis, store, index_ttl_seconds=settings.job_ttl_seconds)
    batch_store = BatchStore(redis, ttl_seconds=settings.job_ttl_seconds)
    celery = make_celery(settings)
    deliveries = DeliveryStore(redis, ttl_seconds=settings.job_ttl_seconds)
    webhook_listener = WebhookListener(deliveries, enqueue=functools.partial(enqueue_delivery, celery))
    return Services(
        settings=settings,
        redis=redis,
        store=store,
        storage=make_storage(settings),
        celery=celery,
        policy=UrlPolicy.from_settings(settings),
        keys=CachedKeyStore(redis, ttl_seconds=settings.api_key_cache_seconds),
        limiter=RateLimiter(redis, default=settings.rate_limit),
        quota=QuotaCounter(redis, default=settings.monthly_quota),
        idempotency=IdempotencyStore(redis, ttl_seconds=settings.idempotency_ttl_seconds),
        cache=cache,
        fair=FairQueue(redis, store, ahead=settings.dispatch_ahead,
                       stale_after=settings.visibility_timeout_seconds),
        batches=batch_store,
        # Jobs that end inside the API (cache hits, refused batch jobs, repaired followers)
        # get their webhooks from here; the worker's Completion does the same for captures.
        completion=Completion(store, cache, batch_store, job_hooks=(webhook_listener.job_finished,),
                              batch_hooks=(webhook_listener.batch_finished,)),
        deliveries=deliveries,
        webhook_secrets=WebhookSecrets.from_settings(settings, redis),
    )


def create_app(settings: Settings) -> FastAPI:
    """A Shotline API application for ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        try:
            yield
        finally:
            await services.storage.aclose()
            await services.redis.aclose()
            services.celery.close()

    app = FastAPI(title="Shotline", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    # Last added runs first: request id → body size limit → rate-limit headers → idempotency
    # → routes.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=request_body_limit(settings))
    app.add_middleware(RequestIdMiddleware)
    install_metrics(app)
    install_error_handlers(app)
    for module in (screenshots, jobs, webhooks, batches, render, files, health, console):
        app.include_router(module.router)
    return app

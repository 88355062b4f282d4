"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.idempotency import IdempotencyMiddleware, IdempotencyStore
from api.key_cache import CachedKeyStore
from api.metrics import install_metrics
from api.middleware import (
    BodySizeLimitMiddleware,
    RateLimitHeadersMiddleware,
    RequestIdMiddleware,
)
from api.ratelimit import RateLimiter
from api.routes import batches, console, files, health, jobs, render, screenshots, webhooks
from api.routes import monitors as monitor_routes
from api.services import Services
from shared.composition import build_components
from shared.inputs import request_body_limit
from shared.queue import make_celery
from shared.quota import QuotaCounter
from shared.settings import Settings
from shared.storage.destinations import make_storage_router
from shared.url_policy import UrlPolicy
from shared.webhooks.secrets import WebhookSecrets

DESCRIPTION = """Screenshots of web pages as a service: submit a capture (202 + job id),
poll the job, download the image from a time-limited URL."""


def build_services(settings: Settings) -> Services:
    """The API's clients (no I/O happens until they are used)."""
    celery = make_celery(settings)
    # A burst beyond the pool waits up to a second for a free connection rather than
    # failing with 503 "Too many connections" (seen at 200 submits/s on two cores).
    # Jobs that end inside the API (cache hits, refused batch jobs, repaired followers)
    # get their webhooks from the components' Completion, as captures do in the worker.
    components = build_components(settings, producer=celery, wait_for_connection=1.0)
    redis = components.redis
    return Services(
        settings=settings,
        redis=redis,
        store=components.jobs,
        storage=make_storage_router(settings),
        celery=celery,
        policy=UrlPolicy.from_settings(settings),
        keys=CachedKeyStore(redis, ttl_seconds=settings.api_key_cache_seconds),
        limiter=RateLimiter(redis, default=settings.rate_limit),
        quota=QuotaCounter(redis, default=settings.monthly_quota),
        idempotency=IdempotencyStore(redis, ttl_seconds=settings.idempotency_ttl_seconds),
        cache=components.cache,
        fair=components.fair,
        batches=components.batches,
        completion=components.completion,
        deliveries=components.deliveries,
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

    # /docs and /redoc with Swagger UI's and ReDoc's files served from the package, not a CDN.
    app = FastAPIOffline(title="Shotline", version="0.1.0", description=DESCRIPTION,
                         lifespan=lifespan, static_url="/docs-assets", favicon_url="/favicon.ico")
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
    app.include_router(monitor_routes.router)
    return app

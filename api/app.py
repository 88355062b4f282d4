"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.metrics import install_metrics
from api.middleware import RequestIdMiddleware
from api.routes import console, files, health, jobs, screenshots
from api.services import Services
from shared.connections import create_redis
from shared.queue import make_celery
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.storage import make_storage
from shared.url_policy import UrlPolicy

DESCRIPTION = """Screenshots of web pages as a service: submit a capture (202 + job id),
poll the job, download the image from a time-limited URL."""


def build_services(settings: Settings) -> Services:
    """The API's clients (no I/O happens until they are used)."""
    redis = create_redis(settings.redis_url)
    return Services(
        settings=settings,
        redis=redis,
        store=StatusStore(redis, ttl_seconds=settings.job_ttl_seconds,
                          queued_deadline=settings.queued_deadline_seconds),
        storage=make_storage(settings),
        celery=make_celery(settings),
        policy=UrlPolicy.from_settings(settings),
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
    app.add_middleware(RequestIdMiddleware)
    install_metrics(app)
    install_error_handlers(app)
    for module in (screenshots, jobs, files, health, console):
        app.include_router(module.router)
    return app

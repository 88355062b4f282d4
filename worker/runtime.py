"""Per-process worker resources: one event loop with its Redis client, store, storage and engine.

Celery's prefork pool forks children; each child builds its runtime lazily on its first
task (after the fork), keeps it for its whole life (the browser stays warm) and closes it
on shutdown so no Chromium outlives the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from shared.connections import create_redis
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.storage import make_storage
from shared.url_policy import UrlPolicy
from shared.webhooks.store import DeliveryStore
from worker.engines import make_engine
from worker.pipeline import PipelineDeps
from worker.webhooks import Enqueue, WebhookListener

T = TypeVar("T")


class WorkerRuntime:
    """The long-lived objects one worker process runs its captures with."""

    def __init__(self, settings: Settings, *, enqueue_delivery: Enqueue | None = None) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.redis = create_redis(settings.redis_url, max_connections=16)
        webhooks = WebhookListener(
            DeliveryStore(self.redis, ttl_seconds=settings.job_ttl_seconds),
            enqueue=enqueue_delivery,
        )
        self.deps = PipelineDeps(
            store=StatusStore(self.redis, ttl_seconds=settings.job_ttl_seconds),
            engine=make_engine(settings),
            storage=make_storage(settings),
            policy=UrlPolicy.from_settings(settings),
            max_attempts=settings.capture_max_attempts,
            max_result_bytes=settings.max_result_bytes,
            listeners=(webhooks,),
            renotify=(webhooks,),  # idempotent: a second call opens and enqueues nothing
        )
        self._started = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on this process's event loop."""
        if not self._started:
            self.loop.run_until_complete(self.deps.engine.start())
            self._started = True
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Stop the engine (and its browser), close clients and the loop."""
        try:
            self.loop.run_until_complete(self._aclose())
        finally:
            self.loop.close()

    async def _aclose(self) -> None:
        try:
            await self.deps.engine.aclose()
        finally:
            await self.deps.storage.aclose()
            await self.redis.aclose()


_runtime: WorkerRuntime | None = None


def get_runtime(settings: Settings, *, enqueue_delivery: Enqueue | None = None) -> WorkerRuntime:
    """This process's runtime, built on first use.

    ``enqueue_delivery`` sends a webhook delivery task; without it, finished jobs' webhooks
    are left to the dispatcher (about a second later).
    """
    global _runtime
    if _runtime is None:
        _runtime = WorkerRuntime(settings, enqueue_delivery=enqueue_delivery)
    return _runtime


def close_runtime() -> None:
    """Close this process's runtime, if it was built."""
    global _runtime
    if _runtime is not None:
        runtime, _runtime = _runtime, None
        runtime.close()

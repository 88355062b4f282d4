"""Per-process worker resources: one event loop with its Redis client, store, storage and engine.

Celery's prefork pool forks children; each child builds its runtime lazily on its first
task (after the fork), keeps it for its whole life (the browser stays warm) and closes it
on shutdown so no Chromium outlives the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from shared.batches import BatchStore
from shared.completion import Completion, Resettle
from shared.connections import create_redis
from shared.constants import SNAPAPI_SEMAPHORE
from shared.queue import max_countdown
from shared.result_cache import ResultCache
from shared.semaphore import FleetSemaphore
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.storage import make_storage
from shared.url_policy import UrlPolicy
from shared.webhooks.listener import Enqueue, WebhookListener
from shared.webhooks.store import DeliveryStore
from worker.engines import make_engine
from worker.job_metrics import MetricsListener
from worker.pipeline import PipelineDeps

T = TypeVar("T")

#: How long cancelled captures may take to unwind when the process shuts down.
CANCEL_TIMEOUT_S = 5.0


class WorkerRuntime:
    """The long-lived objects one worker process runs its captures with."""

    def __init__(self, settings: Settings, *, enqueue_delivery: Enqueue | None = None) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.redis = create_redis(settings.redis_url, max_connections=16)
        store = StatusStore(self.redis, ttl_seconds=settings.job_ttl_seconds,
                            queued_deadline=settings.queued_deadline_seconds)
        engine = make_engine(settings)
        # Result cache index, single-flight followers and batch counts. Other reactions to
        # finished jobs (webhooks) go into its job_hooks/batch_hooks, here and in api/app.py:
        # jobs that share a capture end here without a pipeline run of their own.
        webhooks = WebhookListener(
            DeliveryStore(self.redis, ttl_seconds=settings.job_ttl_seconds),
            enqueue=enqueue_delivery,
        )
        batches = BatchStore(self.redis, ttl_seconds=settings.job_ttl_seconds)
        completion = Completion(
            store,
            ResultCache(self.redis, store, index_ttl_seconds=settings.job_ttl_seconds),
            batches,
            job_hooks=(webhooks.job_finished,),
            batch_hooks=(webhooks.batch_finished,),
        )
        self.deps = PipelineDeps(
            store=store,
            engine=engine,
            storage=make_storage(settings),
            policy=UrlPolicy.from_settings(settings),
            max_attempts=settings.capture_max_attempts,
            max_result_bytes=settings.max_result_bytes,
            listeners=(completion, MetricsListener(engine=engine.name)),
            slots=(
                FleetSemaphore(self.redis, SNAPAPI_SEMAPHORE,
                               limit=settings.snapapi_max_concurrency)
                if settings.engine == "snapapi" else None
            ),
            slot_wait=settings.snapapi_slot_wait_seconds,
            running_grace=settings.running_grace_seconds,
            max_countdown=max_countdown(settings),
            # Idempotent: a second call opens and enqueues nothing.
            renotify=(Resettle(completion),),
        )
        self._started = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on this process's event loop."""
        if not self._started:
            self.loop.run_until_complete(self.deps.engine.start())
            self._started = True
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Stop the engine (and its browser), close clients and the loop.

        A capture still pending on the loop (the process is being terminated mid-task) is
        cancelled first: it must not go on against a closing browser and record the
        resulting error as the job's outcome. Its job stays running and its message,
        never acknowledged, is delivered again.
        """
        try:
            pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=CANCEL_TIMEOUT_S))
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

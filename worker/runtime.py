"""Per-process worker resources: one event loop with its Redis client, store, storage and engine.

The loop runs in a thread of its own and every capture is handed to it with
``run_coroutine_threadsafe``, so one runtime serves any Celery pool:

- threads (the default): one process, many pool threads, all of whose captures run
  concurrently on the one loop: for the Chromium engine several in flight on one browser,
  for the SnapAPI engine many waiting on the network;
- prefork: each pool child builds its runtime lazily on its first task (after the fork)
  and runs one capture at a time, on a browser of its own.

The runtime lives as long as its process (the browser stays warm) and is closed on
shutdown so no Chromium outlives the worker.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from shared.apikeys import KeyStore
from shared.completion import Resettle
from shared.composition import build_components
from shared.constants import SNAPAPI_SEMAPHORE
from shared.queue import max_countdown
from shared.retention import RetentionIndex, RetentionListener
from shared.semaphore import FleetSemaphore
from shared.settings import Settings
from shared.storage.destinations import make_storage_router
from shared.url_policy import UrlPolicy
from shared.webhooks.listener import Enqueue
from worker.background import LoopThread
from worker.engines import make_engine
from worker.job_metrics import MetricsListener
from worker.monitor_results import monitor_results
from worker.pipeline import PipelineDeps

T = TypeVar("T")

#: How long cancelled captures may take to unwind when the process shuts down.
CANCEL_TIMEOUT_S = 5.0


class WorkerRuntime:
    """The long-lived objects one worker process runs its captures with."""

    def __init__(self, settings: Settings, *, enqueue_delivery: Enqueue | None = None) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self._thread = LoopThread("shotline-captures")
        self.loop = self._thread.loop
        # The threads pool runs many captures at once: they wait for a free connection
        # rather than fail for want of one.
        components = build_components(settings, enqueue=enqueue_delivery, max_connections=32,
                                      wait_for_connection=5.0)
        self.redis = components.redis
        engine = make_engine(settings)
        storage = make_storage_router(settings)
        # Monitors' runs are compared when they end (numpy: the workers only, not the API).
        components.completion.add_job_hook(monitor_results(settings, components, storage))
        self.deps = PipelineDeps(
            store=components.jobs,
            engine=engine,
            storage=storage,
            policy=UrlPolicy.from_settings(settings),
            max_attempts=settings.capture_max_attempts,
            max_result_bytes=settings.max_result_bytes,
            # Result cache index, single-flight followers, batch counts and webhooks (the
            # first two in the job's final transition).
            completion=components.completion,
            listeners=(MetricsListener(engine=engine.name),
                       RetentionListener(RetentionIndex(self.redis), KeyStore(self.redis),
                                         default=settings.result_retention_seconds)),
            slots=(
                FleetSemaphore(self.redis, SNAPAPI_SEMAPHORE,
                               limit=settings.snapapi_max_concurrency)
                if settings.engine == "snapapi" else None
            ),
            slot_wait=settings.snapapi_slot_wait_seconds,
            running_grace=settings.running_grace_seconds,
            max_countdown=max_countdown(settings),
            # Idempotent: a second call opens and enqueues nothing.
            renotify=(Resettle(components.completion),),
        )
        self._starting: asyncio.Future[None] | None = None
        #: The tasks of the captures running now (touched on the loop only).
        self._captures: set[asyncio.Task[Any]] = set()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this process's event loop and wait for its result.

        Thread-safe: the threads pool calls it from many threads at once. The engine is
        started once, by the first call; the others wait for that start.
        """
        return self._thread.run(self._run(coro))

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        starting = self._starting
        if starting is None or (starting.done() and (starting.cancelled() or starting.exception())):
            # First call, or the last start failed: (re)start, as one task all callers share.
            starting = self._starting = asyncio.ensure_future(self.deps.engine.start())
        task = asyncio.current_task()
        assert task is not None
        self._captures.add(task)
        try:
            try:
                await asyncio.shield(starting)
            except BaseException:
                coro.close()
                raise
            return await coro
        finally:
            self._captures.discard(task)

    def cancel_captures(self) -> int:
        """Cancel every capture running on the loop (a shutdown that cannot wait any more);
        their tasks raise ``concurrent.futures.CancelledError``. Returns how many."""
        return self._thread.run(self._cancel_captures(), CANCEL_TIMEOUT_S + 5)

    async def _cancel_captures(self) -> int:
        return await _cancel(list(self._captures))

    def close(self) -> None:
        """Stop the engine (and its browser), close clients and the loop.

        A capture still pending on the loop (the process is being terminated mid-task) is
        cancelled first: it must not go on against a closing browser and record the
        resulting error as the job's outcome. Its job stays running and its message,
        never acknowledged, is delivered again.
        """
        try:
            self._thread.run(self._cancel_and_aclose(), CANCEL_TIMEOUT_S + 30)
        finally:
            self._thread.close()

    async def _cancel_and_aclose(self) -> None:
        current = asyncio.current_task()
        await _cancel([task for task in asyncio.all_tasks() if task is not current])
        await self._aclose()

    async def _aclose(self) -> None:
        try:
            await self.deps.engine.aclose()
        finally:
            await self.deps.storage.aclose()
            await self.redis.aclose()


async def _cancel(tasks: list[asyncio.Task[Any]]) -> int:
    """Cancel ``tasks`` and give them :data:`CANCEL_TIMEOUT_S` to unwind; how many were live."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_TIMEOUT_S)
    return len(pending)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime(settings: Settings, *, enqueue_delivery: Enqueue | None = None) -> WorkerRuntime:
    """This process's runtime, built on first use (again after a fork: a forked child
    inherits no running loop thread).

    ``enqueue_delivery`` sends a webhook delivery task; without it, finished jobs' webhooks
    are left to the dispatcher (about a second later).
    """
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(settings, enqueue_delivery=enqueue_delivery)
        return _runtime


def cancel_captures() -> int:
    """Cancel the captures running in this process, if it has a runtime; how many."""
    with _runtime_lock:
        runtime = _runtime
    if runtime is None or runtime.pid != os.getpid():
        return 0
    return runtime.cancel_captures()


def close_runtime() -> None:
    """Close this process's runtime, if it was built here."""
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is not None and runtime.pid == os.getpid():
        runtime.close()

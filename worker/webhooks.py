"""The worker side of webhooks: the job listener, the delivery runtime and the dispatcher.

- :class:`WebhookListener` runs in capture workers: when a job (or a whole batch) with a
  ``webhook_url`` finishes it records the delivery and enqueues its task; it never sends
  anything itself.
- :class:`WebhookRuntime` runs in webhook workers (``--pool threads``): one event loop in a
  background thread with its Redis client, stores and SSRF-safe HTTP client. Delivery tasks,
  on any of the pool's threads, hand their coroutine to that loop and wait for it.
- The dispatcher, a coroutine on that loop in every worker consuming the webhook queue,
  enqueues the deliveries that come due (retries, lost tasks) every second. Retry times
  live in Redis, not in Celery countdowns, so they survive restarts and never exceed the
  broker's visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import structlog

from shared.composition import build_components
from shared.safe_http import safe_async_client
from shared.settings import Settings
from shared.storage.destinations import make_storage_router
from shared.url_policy import UrlPolicy
from shared.webhooks.delivery import DeliveryDeps, dispatch_due
from shared.webhooks.listener import LEASE_SECONDS, Enqueue
from shared.webhooks.secrets import WebhookSecrets
from worker.background import LoopThread

log = structlog.get_logger("shotline.webhooks")

T = TypeVar("T")

#: How often the dispatcher looks for due deliveries, and how many it takes at a time.
DISPATCH_INTERVAL_SECONDS = 1.0
DISPATCH_BATCH = 100

class WebhookRuntime:
    """One process's webhook machinery: an event loop thread and the clients it owns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self._thread = LoopThread("shotline-webhooks")
        self.loop = self._thread.loop
        self._dispatcher: Future[None] | None = None
        self.deps: DeliveryDeps = self.run(self._build())

    async def _build(self) -> DeliveryDeps:
        settings = self.settings
        components = build_components(settings, max_connections=32)
        return DeliveryDeps(
            deliveries=components.deliveries,
            jobs=components.jobs,
            batches=components.batches,
            storage=make_storage_router(settings),
            secrets=WebhookSecrets.from_settings(settings, components.redis),
            client=safe_async_client(UrlPolicy.from_settings(settings),
                                     timeout=settings.webhook_timeout_seconds),
            schedule=tuple(settings.webhook_retry_schedule),
            url_ttl_seconds=settings.url_ttl_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
            public_base_url=settings.public_base_url,
        )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the runtime's loop and wait for its result (from any thread)."""
        return self._thread.run(coro)

    def start_dispatcher(self, enqueue: Enqueue, *, interval: float = DISPATCH_INTERVAL_SECONDS,
                         lease_seconds: float = LEASE_SECONDS) -> None:
        """Enqueue due deliveries every ``interval`` seconds until :meth:`close`."""
        if self._dispatcher is None:
            self._dispatcher = self._thread.submit(
                self._dispatch_forever(enqueue, interval, lease_seconds))
            log.info("webhook dispatcher started", interval=interval, lease_seconds=lease_seconds)

    async def _dispatch_forever(self, enqueue: Enqueue, interval: float,
                                lease_seconds: float) -> None:
        async def send(subject: str) -> None:
            await asyncio.to_thread(enqueue, subject)

        while True:
            try:
                sent = await dispatch_due(self.deps.deliveries, send, lease_seconds=lease_seconds,
                                          limit=DISPATCH_BATCH)
                if len(sent) == DISPATCH_BATCH:
                    continue  # a backlog: keep handing it out
            except Exception as exc:  # Redis or broker away: keep trying, entries stay due
                log.warning("webhook dispatcher pass failed", error=str(exc))
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Stop the dispatcher, close the clients and the loop thread."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        with contextlib.suppress(Exception):
            self.run(self._aclose())
        self._thread.close()

    async def _aclose(self) -> None:
        try:
            await self.deps.client.aclose()
            await self.deps.storage.aclose()
        finally:
            await self.deps.deliveries.redis.aclose()


_runtime: WebhookRuntime | None = None
_runtime_lock = threading.Lock()


def get_webhook_runtime(settings: Settings) -> WebhookRuntime:
    """This process's webhook runtime, built on first use (again after a fork)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WebhookRuntime(settings)
        return _runtime


def close_webhook_runtime() -> None:
    """Close this process's webhook runtime, if it was built here."""
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is not None and runtime.pid == os.getpid():
        runtime.close()

"""The composition root: builds the stores and listeners of every entry point from the settings.

The API app (:mod:`api.app`), the capture worker's runtime (:mod:`worker.runtime`), the
webhook worker's runtime (:mod:`worker.webhooks`), the sweeper and the dispatcher
(:mod:`worker.sweeper`, :mod:`worker.dispatcher`) and the CLI all ask :func:`build_components`
for the same graph: one Redis client, the status, cache, batch and delivery stores, the
fair queue, and the :class:`~shared.completion.Completion` that settles finished jobs with
its webhook hooks. Wiring it in one place means a new reaction to finished jobs is added
once and reaches every process where jobs end.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis.asyncio as aioredis
from celery import Celery

from shared.apikeys import KeyStore
from shared.batches import BatchStore
from shared.completion import Completion
from shared.connections import create_redis
from shared.fair_queue import FairQueue
from shared.queue import enqueue_delivery
from shared.result_cache import ResultCache
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.webhooks.listener import Enqueue, WebhookListener
from shared.webhooks.store import DeliveryStore


@dataclass(frozen=True, slots=True)
class Components:
    """The long-lived Redis-backed objects one process works with (no I/O until used)."""

    redis: aioredis.Redis
    jobs: StatusStore
    cache: ResultCache
    batches: BatchStore
    deliveries: DeliveryStore
    fair: FairQueue
    webhooks: WebhookListener
    completion: Completion

    async def aclose(self) -> None:
        """Close the Redis client (the stores share it)."""
        await self.redis.aclose()


def build_components(
    settings: Settings,
    *,
    producer: Celery | None = None,
    enqueue: Enqueue | None = None,
    max_connections: int = 64,
    wait_for_connection: float | None = None,
) -> Components:
    """Every store and listener on one new Redis client for ``settings``.

    Finished jobs' webhook deliveries are enqueued with ``enqueue`` or, when only a
    ``producer`` is given, sent through it; with neither they are left to the webhook
    workers' dispatcher (about a second later). ``max_connections`` and
    ``wait_for_connection`` size the Redis pool for the process's concurrency.
    """
    if enqueue is None and producer is not None:
        enqueue = functools.partial(enqueue_delivery, producer)
    redis = create_redis(settings.redis_url, max_connections=max_connections,
                         wait_for_connection=wait_for_connection)
    ttl = settings.job_ttl_seconds
    jobs = StatusStore(redis, ttl_seconds=ttl, queued_deadline=settings.queued_deadline_seconds)
    cache = ResultCache(redis, jobs, index_ttl_seconds=ttl)
    batches = BatchStore(redis, ttl_seconds=ttl)
    deliveries = DeliveryStore(redis, ttl_seconds=ttl)
    webhooks = WebhookListener(deliveries, enqueue=enqueue)
    return Components(
        redis=redis,
        jobs=jobs,
        cache=cache,
        batches=batches,
        deliveries=deliveries,
        fair=FairQueue(redis, jobs, ahead=settings.dispatch_ahead,
                       stale_after=settings.visibility_timeout_seconds),
        webhooks=webhooks,
        # Result cache index, single-flight followers, batch counts; webhooks as its hooks,
        # so jobs that end without a capture of their own (cache hits, followers, jobs the
        # sweeper fails as lost) get theirs too.
        completion=Completion(jobs, cache, batches, job_hooks=(webhooks.job_finished,),
                              batch_hooks=(webhooks.batch_finished,)),
    )


def build_key_store(settings: Settings, *, redis_url: str | None = None) -> KeyStore:
    """The API key store on a small Redis client of its own (the CLI's ``keys`` commands and
    ``shotline dev``'s key), on ``redis_url`` when given; the caller closes ``store.redis``."""
    return KeyStore(create_redis(redis_url or settings.redis_url, max_connections=2))

"""The monitor scheduler's thread in a worker's main process (see
:mod:`shared.monitors.scheduler`): its own Redis client and event loop, like the fair
queue's dispatcher. Every capture worker runs one; claims are atomic, so any number may."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from shared.apikeys import KeyStore
from shared.connections import create_redis
from shared.errors import ApiKeyNotFound
from shared.fair_queue import FairQueue
from shared.monitors.runs import Charge, RunStarter
from shared.monitors.scheduler import MonitorScheduler
from shared.monitors.store import MonitorStore
from shared.principal import Principal
from shared.quota import QuotaCounter
from shared.settings import Settings
from shared.status_store import StatusStore
from worker.background import BackgroundLoop


def quota_charge(settings: Settings, redis: aioredis.Redis) -> Charge:
    """Charges a scheduled run to its key's monthly quota, as the API charges a capture.

    The same counter as the API's (:mod:`shared.quota`), so a key's captures and its
    monitors' runs count against the same quota.
    """
    keys, quota = KeyStore(redis), QuotaCounter(redis, default=settings.monthly_quota)

    async def charge(api_key_id: str | None) -> None:
        if api_key_id is None:
            return  # anonymous (single-tenant): no quota, as in the API
        key = await keys.get(api_key_id)
        if not key.active:
            raise ApiKeyNotFound(f"API key {api_key_id} was revoked; its monitors no longer run")
        await quota.charge(Principal(key=key, client="monitor"))

    return charge


def monitor_scheduler_thread(settings: Settings) -> BackgroundLoop:
    """A (not yet started) monitor scheduler thread."""

    def build() -> tuple[MonitorScheduler, Callable[[], Awaitable[None]]]:
        redis = create_redis(settings.redis_url, max_connections=4)
        store = StatusStore(redis, ttl_seconds=settings.job_ttl_seconds,
                            queued_deadline=settings.queued_deadline_seconds)
        fair = FairQueue(redis, store, ahead=settings.dispatch_ahead,
                         stale_after=settings.visibility_timeout_seconds)
        monitors = MonitorStore(redis)
        starter = RunStarter(monitors, store, fair, charge=quota_charge(settings, redis))
        return MonitorScheduler(monitors, starter), redis.aclose

    return BackgroundLoop(build, name="shotline-monitor-scheduler")

"""The monitor scheduler's thread in a worker's main process (see
:mod:`shared.monitors.scheduler`): its own Redis client and event loop, like the fair
queue's dispatcher. Every capture worker runs one; claims are atomic, so any number may."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from shared.apikeys import KeyStore
from shared.composition import build_components
from shared.errors import ApiKeyNotFound
from shared.monitors.alerts import notify
from shared.monitors.models import Monitor, MonitorRun
from shared.monitors.runs import Charge, OnRefused, RunStarter
from shared.monitors.scheduler import MonitorScheduler
from shared.monitors.store import MonitorStore
from shared.principal import Principal
from shared.quota import QuotaCounter
from shared.settings import Settings
from shared.webhooks.listener import WebhookListener
from shared.webhooks.payload import EventType
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


def alert_on_refusal(settings: Settings, webhooks: WebhookListener) -> OnRefused:
    """``monitor.failed`` for a run the quota refused, once its owner's failures in a row
    reach ``MONITOR_FAILURES_BEFORE_ALERT`` (as for runs whose capture failed)."""

    async def on_refused(monitor: Monitor, run: MonitorRun, failures: int) -> None:
        if failures == settings.monitor_failures_before_alert:
            await notify(webhooks, monitor, run, EventType.monitor_failed)

    return on_refused


def monitor_scheduler_thread(settings: Settings) -> BackgroundLoop:
    """A (not yet started) monitor scheduler thread."""

    def build() -> tuple[MonitorScheduler, Callable[[], Awaitable[None]]]:
        components = build_components(settings, max_connections=4)
        redis = components.redis
        monitors = MonitorStore(redis)
        starter = RunStarter(monitors, components.jobs, components.fair,
                             charge=quota_charge(settings, redis),
                             on_refused=alert_on_refusal(settings, components.webhooks))
        return MonitorScheduler(monitors, starter), components.aclose

    return BackgroundLoop(build, name="shotline-monitor-scheduler")

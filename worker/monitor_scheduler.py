"""The monitor scheduler's thread in a worker's main process (see
:mod:`shared.monitors.scheduler`): its own Redis client and event loop, like the fair
queue's dispatcher. Every capture worker runs one; claims are atomic, so any number may."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.connections import create_redis
from shared.fair_queue import FairQueue
from shared.monitors.runs import RunStarter
from shared.monitors.scheduler import MonitorScheduler
from shared.monitors.store import MonitorStore
from shared.settings import Settings
from shared.status_store import StatusStore
from worker.background import BackgroundLoop


def monitor_scheduler_thread(settings: Settings) -> BackgroundLoop:
    """A (not yet started) monitor scheduler thread."""

    def build() -> tuple[MonitorScheduler, Callable[[], Awaitable[None]]]:
        redis = create_redis(settings.redis_url, max_connections=4)
        store = StatusStore(redis, ttl_seconds=settings.job_ttl_seconds,
                            queued_deadline=settings.queued_deadline_seconds)
        fair = FairQueue(redis, store, ahead=settings.dispatch_ahead,
                         stale_after=settings.visibility_timeout_seconds)
        monitors = MonitorStore(redis)
        return MonitorScheduler(monitors, RunStarter(monitors, store, fair)), redis.aclose

    return BackgroundLoop(build, name="shotline-monitor-scheduler")

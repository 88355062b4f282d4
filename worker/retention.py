"""The retention sweep's thread: deletes results whose retention period ended
(:class:`shared.retention.RetentionSweeper`) in every capture worker's main process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.connections import create_redis
from shared.retention import RetentionSweeper
from shared.settings import Settings
from shared.storage.destinations import make_storage_router
from worker.background import BackgroundLoop


def retention_thread(settings: Settings) -> BackgroundLoop:
    """A (not yet started) retention sweep with its own Redis client and storage."""

    def build() -> tuple[RetentionSweeper, Callable[[], Awaitable[None]]]:
        redis = create_redis(settings.redis_url, max_connections=2)
        storages = make_storage_router(settings)

        async def close() -> None:
            await storages.aclose()
            await redis.aclose()

        sweeper = RetentionSweeper(redis, storages,
                                   interval=settings.retention_sweep_interval_seconds)
        return sweeper, close

    return BackgroundLoop(build, name="shotline-retention")

"""Monthly capture quotas per API key, counted in Redis.

Charged by the API for each capture it queues and by the workers' monitor scheduler for
each scheduled run (:mod:`worker.monitor_scheduler`): one counter, so a key's captures and
its monitors' runs use up the same quota.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from shared.constants import QUOTA_PREFIX
from shared.errors import QuotaExceeded
from shared.principal import Principal
from shared.status_store import redis_errors


def _next_month(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


class QuotaCounter:
    """Captures per key and calendar month (UTC). Cache hits and shared captures are free."""

    def __init__(self, redis: aioredis.Redis, *, default: int | None) -> None:
        self.redis = redis
        self.default = default

    def _quota(self, principal: Principal) -> int | None:
        if principal.key is None:
            return None
        return principal.key.monthly_quota if principal.key.monthly_quota is not None else self.default

    def _key(self, principal: Principal, now: datetime) -> str:
        return f"{QUOTA_PREFIX}{principal.owner}:{now:%Y-%m}"

    async def charge(self, principal: Principal, *, now: datetime | None = None) -> None:
        """Count one capture; :class:`QuotaExceeded` (nothing counted) when none is left."""
        quota = self._quota(principal)
        if quota is None:
            return
        now = now or datetime.now(UTC)
        key = self._key(principal, now)
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 40 * 24 * 3600)
                used, _ = await pipe.execute()
            if used > quota:
                await self.redis.decr(key)
                retry_after = max(1, int((_next_month(now) - now).total_seconds()))
                raise QuotaExceeded(f"Monthly quota of {quota} captures used up.",
                                    retry_after=retry_after)

    async def refund(self, principal: Principal, *, now: datetime | None = None) -> None:
        """Give back a charge (the request turned out to share another capture)."""
        if self._quota(principal) is None:
            return
        with redis_errors():
            await self.redis.decr(self._key(principal, now or datetime.now(UTC)))

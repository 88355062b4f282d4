"""Per-key request rate limits (moving window, shared by every API process through Redis)
and monthly capture quotas.

Rates are parsed by ``limits`` (the library behind slowapi: ``"60/minute"``), and the
window is kept the way its Redis storage keeps a moving window (a list of hit times, newest
first, trimmed to the limit). The hit and the window's state for the ``X-RateLimit-*``
headers are one Lua script here, one round trip per request, where ``limits.aio`` needs two
(``hit`` then ``get_window_stats``). Times come from the Redis clock, so API hosts whose
clocks disagree still share one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from limits import RateLimitItem, parse

from api.auth import Principal
from shared.constants import QUOTA_PREFIX, RATE_LIMIT_PREFIX
from shared.errors import QuotaExceeded
from shared.status_store import redis_errors

# KEYS[1] the caller's window: hit times (Redis clock, seconds), newest first. ARGV[1] the
# limit, ARGV[2] the window in seconds, ARGV[3] the cost of this request. Counts the hits
# unless that would go over the limit, then finds the oldest hit still in the window.
# Returns {allowed 1|0, hits in the window, oldest hit's time, now} (times as strings: Lua
# numbers would come back truncated to integers).
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local start = now - window
local allowed = 0
if cost <= limit then
  local entry = redis.call('LINDEX', KEYS[1], limit - cost)
  if not entry or tonumber(entry) < start then
    local hits = {}
    for i = 1, cost do hits[i] = string.format('%.6f', now) end
    redis.call('LPUSH', KEYS[1], unpack(hits))
    redis.call('LTRIM', KEYS[1], 0, limit - 1)
    redis.call('EXPIRE', KEYS[1], math.ceil(window))
    allowed = 1
  end
end
local low, high, last = 0, redis.call('LLEN', KEYS[1]) - 1, -1
while low <= high do
  local mid = math.floor((low + high) / 2)
  local value = tonumber(redis.call('LINDEX', KEYS[1], mid))
  if value and value >= start then last = mid; low = mid + 1 else high = mid - 1 end
end
local oldest = now
if last >= 0 then oldest = tonumber(redis.call('LINDEX', KEYS[1], last)) end
return {allowed, last + 1, string.format('%.6f', oldest), string.format('%.6f', now)}
"""


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """What the ``X-RateLimit-*`` headers say after a request."""

    limit: int
    remaining: int
    reset: int  # Unix time (seconds) at which the window has room again
    allowed: bool = True
    retry_after: int = 1  # seconds until then

    def headers(self) -> dict[str, str]:
        """The response headers."""
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


class RateLimiter:
    """Moving-window limits per caller on Redis."""

    def __init__(self, redis: aioredis.Redis, *, default: str) -> None:
        self.redis = redis
        self._hit = redis.register_script(_HIT)
        self.default = parse(default)
        self._parsed: dict[str, RateLimitItem] = {}

    def _item(self, override: str | None) -> RateLimitItem:
        if override is None:
            return self.default
        if override not in self._parsed:
            self._parsed[override] = parse(override)
        return self._parsed[override]

    async def hit(self, principal: Principal, *, cost: int = 1) -> RateLimitState:
        """Count ``cost`` requests of ``principal``; ``allowed`` is false when that would go
        over its limit (and then nothing was counted)."""
        item = self._item(principal.key.rate_limit if principal.key else None)
        window = item.get_expiry()
        with redis_errors():
            allowed, hits, oldest, now = await self._hit(
                keys=[f"{RATE_LIMIT_PREFIX}:{item.key_for(principal.client)}"],
                args=[item.amount, window, cost],
            )
        reset = float(oldest) + window
        return RateLimitState(
            limit=item.amount, remaining=max(0, item.amount - int(hits)), reset=math.ceil(reset),
            allowed=bool(allowed), retry_after=max(1, math.ceil(reset - float(now))),
        )


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

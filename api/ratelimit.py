"""Per-key request rate limits (moving window, shared by every API process through Redis).
Monthly capture quotas are :mod:`shared.quota` (the workers charge them too).

Built on ``limits`` (the library behind slowapi) through its asyncio API: slowapi's own
limiter is synchronous and its key functions cannot await the API key lookup, while
``limits.aio`` gives the same Redis storage and moving-window strategy without blocking
the event loop.

A request's hit and the window state its headers report are ``limits``' two moving-window
scripts (its own Lua, its keys, its arguments, as ``MovingWindowRateLimiter.hit`` and
``get_window_stats`` send them). :meth:`RateLimiter.prepare` hands them over so the API
sends them in one round trip with the request's idempotency lookup
(:func:`api.deps.admit`); ``tests/test_auth_cache.py`` checks the answers against the
library's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from redis.commands.core import AsyncScript

from shared.constants import RATE_LIMIT_PREFIX
from shared.principal import Principal
from shared.scripts import ScriptCall, run_scripts
from shared.status_store import redis_errors


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


@dataclass(frozen=True, slots=True)
class PendingHit:
    """A hit not sent yet: ``limits``' acquire and window scripts, then :meth:`state`."""

    item: RateLimitItem
    calls: tuple[ScriptCall, ScriptCall]

    def state(self, answers: Sequence[Any]) -> RateLimitState:
        """The state after the hit, from the two scripts' answers (as ``limits`` reads them)."""
        allowed = bool(answers[0])
        window = answers[1]
        # MovingWindowRateLimiter.get_window_stats: (oldest entry or now, entries in window).
        start, entries = (float(window[0]), int(window[1])) if window else (time.time(), 0)
        reset = start + self.item.get_expiry()
        return RateLimitState(
            limit=self.item.amount, remaining=max(0, self.item.amount - entries),
            reset=math.ceil(reset), allowed=allowed,
            retry_after=max(1, math.ceil(reset - time.time())),
        )


class RateLimiter:
    """Moving-window limits per caller on Redis."""

    def __init__(self, redis: aioredis.Redis, *, default: str) -> None:
        self.redis = redis
        # The API's own connection pool (its timeouts and retries), no second one.
        self.storage = RedisStorage("async+redis://", implementation="redispy",
                                    key_prefix=RATE_LIMIT_PREFIX, wrap_exceptions=True,
                                    connection_pool=redis.connection_pool,  # type: ignore[arg-type]
                                    )
        self.default = parse(default)
        self._parsed: dict[str, RateLimitItem] = {}

    def _item(self, override: str | None) -> RateLimitItem:
        if override is None:
            return self.default
        if override not in self._parsed:
            self._parsed[override] = parse(override)
        return self._parsed[override]

    def prepare(self, principal: Principal, *, cost: int = 1) -> PendingHit:
        """``principal``'s hit of ``cost`` requests as ``limits``' two moving-window scripts
        (acquire, then the window), for the caller to send with others (:func:`run_scripts`)
        and read with :meth:`PendingHit.state`: ``limits``' ``MovingWindowRateLimiter.hit``
        then ``get_window_stats``, with their keys and arguments."""
        item = self._item(principal.key.rate_limit if principal.key else None)
        bridge = self.storage.bridge
        assert isinstance(bridge, RedispyBridge)  # implementation="redispy" above
        key = bridge.prefixed_key(item.key_for(principal.client))
        expiry = item.get_expiry()
        now = time.time()
        # Registered on our asyncio client (limits annotates them with redis-py's sync type).
        acquire = cast(AsyncScript, bridge.lua_acquire_moving_window)
        window = cast(AsyncScript, bridge.lua_moving_window)
        return PendingHit(item=item, calls=(
            ScriptCall(acquire, [key], [now, item.amount, expiry, cost]),
            ScriptCall(window, [key], [now - expiry, item.amount]),
        ))

    async def hit(self, principal: Principal, *, cost: int = 1) -> RateLimitState:
        """Count ``cost`` requests of ``principal``; ``allowed`` is false when that would go
        over its limit (and then nothing was counted). One round trip (:meth:`prepare`)."""
        pending = self.prepare(principal, cost=cost)
        with redis_errors():
            answers = await run_scripts(self.redis, pending.calls)
        return pending.state(answers)

"""The API's per-request Redis work: key records kept a few seconds in-process, and the rate
limit's hit and window state in one round trip. Real Redis; the cache's clock is injected."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import redis
import redis.asyncio as aioredis
from limits.aio.strategies import MovingWindowRateLimiter

from api.key_cache import CachedKeyStore
from api.ratelimit import RateLimiter
from shared.apikeys import KeyStore
from shared.connections import create_redis
from shared.errors import AuthenticationFailed
from shared.principal import Principal

T = TypeVar("T")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def calls(redis_url: str, command: str) -> int:
    """How many times Redis ran ``command`` so far (INFO commandstats)."""
    client = redis.Redis.from_url(redis_url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def run_with_redis(redis_url: str, body: Callable[..., Awaitable[T]]) -> T:
    async def run() -> T:
        client = create_redis(redis_url)
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_a_revoked_key_is_refused_once_the_cache_bound_has_passed(redis_url: str) -> None:
    clock = Clock()

    async def body(client: aioredis.Redis) -> None:
        keys = CachedKeyStore(client, ttl_seconds=5, clock=clock)
        new = await KeyStore(client).create("acme")
        assert (await keys.authenticate(new.key)).id == new.record.id
        reads = calls(redis_url, "hgetall")
        for _ in range(3):
            assert (await keys.authenticate(new.key)).id == new.record.id
        assert calls(redis_url, "hgetall") == reads  # answered in-process

        await KeyStore(client).revoke(new.record.id)
        clock.now += 4.9
        assert (await keys.authenticate(new.key)).active  # within the documented bound
        clock.now += 0.2
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await keys.authenticate(new.key)
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await keys.authenticate(new.key)  # failures are never kept

    run_with_redis(redis_url, body)


def test_without_a_cache_a_revoked_key_is_refused_at_once(redis_url: str) -> None:
    async def body(client: aioredis.Redis) -> None:
        keys = CachedKeyStore(client, ttl_seconds=0)
        new = await KeyStore(client).create("acme")
        assert (await keys.authenticate(new.key)).active
        await KeyStore(client).revoke(new.record.id)
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await keys.authenticate(new.key)

    run_with_redis(redis_url, body)


def test_new_keys_work_at_once_and_any_exist_stays_true(redis_url: str) -> None:
    clock = Clock()

    async def body(client: aioredis.Redis) -> None:
        keys = CachedKeyStore(client, ttl_seconds=5, clock=clock)
        assert not await keys.any_exist()
        key = "sl_0123456789abcdef_" + "A" * 43
        with pytest.raises(AuthenticationFailed):
            await keys.authenticate(key)
        await KeyStore(client).create("late", key=key)
        assert (await keys.authenticate(key)).name == "late"  # an unknown key was not kept
        assert not await keys.any_exist()  # "no key yet" is kept for the bound...
        clock.now += 5.1
        assert await keys.any_exist()  # ...then read again
        await KeyStore(client).revoke("0123456789abcdef")
        checks = calls(redis_url, "scard")
        clock.now += 3600
        assert await keys.any_exist()
        assert calls(redis_url, "scard") == checks  # true for good, never asked again

    run_with_redis(redis_url, body)


def test_the_rate_limit_window_is_shared_by_every_process(redis_url: str) -> None:
    async def body(client: aioredis.Redis) -> None:
        one = RateLimiter(client, default="3/minute")
        other = RateLimiter(client, default="3/minute")
        caller = Principal(key=None, client="ip:192.0.2.1")
        first = await one.hit(caller)
        assert (first.allowed, first.limit, first.remaining) == (True, 3, 2)
        second = await other.hit(caller)
        assert (second.allowed, second.remaining) == (True, 1)
        assert first.reset <= second.reset
        refused = await one.hit(caller, cost=2)  # would go over: refused, nothing counted
        assert (refused.allowed, refused.remaining) == (False, 1)
        last = await other.hit(caller)
        assert (last.allowed, last.remaining) == (True, 0)
        over = await one.hit(caller)
        assert not over.allowed and over.remaining == 0 and 1 <= over.retry_after <= 60
        assert over.reset == first.reset  # the window frees up when the oldest hit leaves it
        assert (await one.hit(Principal(key=None, client="ip:192.0.2.2"))).remaining == 2

    run_with_redis(redis_url, body)


def test_a_hit_agrees_with_the_library_s_own_window(redis_url: str) -> None:
    """The hit sends ``limits``' own scripts in one round trip: its own strategy reads the
    same window afterwards."""

    async def body(client: aioredis.Redis) -> None:
        limiter = RateLimiter(client, default="5/minute")
        caller = Principal(key=None, client="ip:192.0.2.9")
        for _ in range(3):
            state = await limiter.hit(caller)
        own = MovingWindowRateLimiter(limiter.storage)
        stats = await own.get_window_stats(limiter.default, caller.client)
        assert state.remaining == stats.remaining == 2
        assert state.reset == math.ceil(stats.reset_time)
        assert await own.test(limiter.default, caller.client, cost=2)
        assert not await own.test(limiter.default, caller.client, cost=3)

    run_with_redis(redis_url, body)


def test_a_hit_after_the_scripts_were_flushed_counts_once(redis_url: str) -> None:
    """A Redis that lost its scripts (restart, ``SCRIPT FLUSH``) answers NOSCRIPT to the
    pipelined hit: each script is loaded and run again on its own, never twice."""

    async def body(client: aioredis.Redis) -> None:
        limiter = RateLimiter(client, default="5/minute")
        caller = Principal(key=None, client="ip:192.0.2.10")
        assert (await limiter.hit(caller)).remaining == 4
        await client.script_flush()
        again = await limiter.hit(caller)
        assert (again.allowed, again.remaining) == (True, 3)
        assert (await limiter.hit(caller)).remaining == 2

    run_with_redis(redis_url, body)

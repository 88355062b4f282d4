"""Redis connections, created once per process and passed in."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def create_redis(url: str, *, max_connections: int = 64,
                 wait_for_connection: float | None = None) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` with short timeouts and a small retry budget.

    Calls fail within about a second when Redis is down, so the API can answer 503 quickly
    instead of hanging; the pool reconnects by itself when Redis comes back. When all
    ``max_connections`` are busy a call fails at once, or, with ``wait_for_connection``,
    waits up to that many seconds for one (a worker running many captures at once).
    """
    pool_class: type[aioredis.ConnectionPool] = aioredis.ConnectionPool
    extra: dict[str, float] = {}
    if wait_for_connection is not None:
        pool_class = aioredis.BlockingConnectionPool
        extra["timeout"] = wait_for_connection
    pool = pool_class.from_url(
        url,
        max_connections=max_connections,
        socket_connect_timeout=1.0,
        socket_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **extra,
    )
    return aioredis.Redis.from_pool(pool)

"""Redis connections, created once per process and passed in."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def create_redis(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` with short timeouts and a small retry budget.

    Calls fail within about a second when Redis is down, so the API can answer 503 quickly
    instead of hanging; the pool reconnects by itself when Redis comes back.
    """
    return aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        socket_connect_timeout=1.0,
        socket_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )

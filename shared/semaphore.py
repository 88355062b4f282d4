"""A fleet-wide counting semaphore in Redis whose slots are leases.

Every holder of a slot is a member of one sorted set scored by its lease's expiry on the
Redis clock. Acquiring first drops expired leases, then takes a slot if fewer than
``limit`` are held, in one Lua script: however many workers compete, at most ``limit``
hold a slot at once, and a holder that crashed without releasing gives its slot back
when its lease runs out. Leases are sized to outlast the work they cover (a SnapAPI call
is bounded by its timeout), so they need no renewal.

Hand-written because the Redis libraries at hand offer locks (one holder) or rate limits
(calls per window), not a bounded number of concurrent holders with expiry.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis

from shared.constants import semaphore_key
from shared.scripts import load_script
from shared.status_store import redis_errors

#: First and longest pause between two tries of a waiting acquirer, in seconds.
POLL_START = 0.02
POLL_MAX = 0.25


class Lease:
    """One slot of a :class:`FleetSemaphore`, held until released or expired."""

    def __init__(self, semaphore: FleetSemaphore, token: str) -> None:
        self._semaphore = semaphore
        self.token = token
        self.released = False

    async def release(self) -> None:
        """Give the slot back. Idempotent; a lease that already expired is simply gone."""
        if not self.released:
            self.released = True
            await self._semaphore.release(self.token)


class FleetSemaphore:
    """At most ``limit`` holders at once across every process using Redis key ``name``."""

    def __init__(self, redis: aioredis.Redis, name: str, *, limit: int) -> None:
        if limit < 1:
            raise ValueError("a semaphore needs at least one slot")
        self.redis = redis
        self.key = semaphore_key(name)
        self.limit = limit
        self._acquire = load_script(redis, __name__, "semaphore_acquire")
        self._held = load_script(redis, __name__, "semaphore_held")

    async def try_acquire(self, *, lease_seconds: float) -> Lease | None:
        """Take a slot for ``lease_seconds`` if one is free right now, else ``None``.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        token = uuid.uuid4().hex
        with redis_errors():
            taken = await self._acquire(keys=[self.key], args=[self.limit, lease_seconds, token])
        return Lease(self, token) if int(taken) == 1 else None

    async def acquire(self, *, lease_seconds: float, wait_seconds: float) -> Lease | None:
        """Take a slot, waiting up to ``wait_seconds`` for one to free up; ``None`` if none did."""
        deadline = time.monotonic() + wait_seconds
        pause = POLL_START
        while True:
            lease = await self.try_acquire(lease_seconds=lease_seconds)
            if lease is not None:
                return lease
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX)

    async def release(self, token: str) -> None:
        """Drop the lease ``token`` (no error when it expired already)."""
        with redis_errors():
            await self.redis.zrem(self.key, token)

    async def held(self) -> int:
        """How many slots are held right now (leases not yet expired)."""
        with redis_errors():
            return int(await self._held(keys=[self.key]))

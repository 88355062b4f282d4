"""A fleet-wide counting semaphore in Redis whose slots are leases.

Every holder of a slot is a member of one sorted set scored by its lease's expiry on the
Redis clock. Taking a slot first drops expired leases, then takes one if fewer than
``limit`` are held, in one Lua script (``lua/take_slot.lua``): however many workers compete,
at most ``limit`` hold a slot at once, and a holder that crashed without releasing gives its
slot back when its lease runs out. Leases are sized to outlast the work they cover (a
SnapAPI call is bounded by its timeout), so they need no renewal.

A capture takes its slot in the same script that marks its job running, and gives it back
in the one that records the attempt's outcome (:class:`shared.status_store.StatusStore`,
given the :class:`Lease`): no round trip of its own either way.

Hand-written because the Redis libraries at hand offer locks (one holder) or rate limits
(calls per window), not a bounded number of concurrent holders with expiry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from shared.constants import semaphore_key
from shared.errors import NoFreeSlot
from shared.scripts import load_script
from shared.status_store import redis_errors

#: First and longest pause between two tries of a waiting acquirer, in seconds.
POLL_START = 0.02
POLL_MAX = 0.25

T = TypeVar("T")


class Lease:
    """One slot of a :class:`FleetSemaphore`: not yet taken, held (``taken``) until released
    or expired. Taken and given back by the semaphore or by a status transition."""

    def __init__(self, semaphore: FleetSemaphore, token: str, *, lease_seconds: float) -> None:
        self._semaphore = semaphore
        self.key = semaphore.key
        self.limit = semaphore.limit
        self.token = token
        self.lease_seconds = lease_seconds
        self.taken = False
        self.released = False

    @property
    def held(self) -> bool:
        """Taken and not given back yet (as far as this process knows)."""
        return self.taken and not self.released

    async def release(self) -> None:
        """Give the slot back. Idempotent; a lease that expired (or was never taken) is
        simply gone."""
        if self.held:
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

    def lease(self, *, lease_seconds: float) -> Lease:
        """A lease of ``lease_seconds`` not taken yet: a status transition may take it
        (:meth:`shared.status_store.StatusStore.mark_running`), as may :meth:`take`."""
        return Lease(self, uuid.uuid4().hex, lease_seconds=lease_seconds)

    async def take(self, lease: Lease) -> Lease:
        """Take ``lease``'s slot now; :class:`NoFreeSlot` when every slot is held.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        with redis_errors():
            taken = await self._acquire(keys=[self.key],
                                        args=[self.limit, lease.lease_seconds, lease.token])
        if int(taken) != 1:
            raise NoFreeSlot(f"all {self.limit} slots of {self.key} are held")
        lease.taken = True
        return lease

    async def try_acquire(self, *, lease_seconds: float) -> Lease | None:
        """Take a slot for ``lease_seconds`` if one is free right now, else ``None``.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        try:
            return await self.take(self.lease(lease_seconds=lease_seconds))
        except NoFreeSlot:
            return None

    async def acquire(self, *, lease_seconds: float, wait_seconds: float) -> Lease | None:
        """Take a slot, waiting up to ``wait_seconds`` for one to free up; ``None`` if none did."""
        lease = self.lease(lease_seconds=lease_seconds)
        try:
            return await wait_for_slot(lambda: self.take(lease), wait_seconds=wait_seconds)
        except NoFreeSlot:
            return None

    async def release(self, token: str) -> None:
        """Drop the lease ``token`` (no error when it expired already)."""
        with redis_errors():
            await self.redis.zrem(self.key, token)

    async def held(self) -> int:
        """How many slots are held right now (leases not yet expired)."""
        with redis_errors():
            return int(await self._held(keys=[self.key]))


async def wait_for_slot(attempt: Callable[[], Awaitable[T]], *, wait_seconds: float) -> T:
    """Call ``attempt`` until it does not raise :class:`NoFreeSlot`, pausing between tries
    (from :data:`POLL_START`, doubling up to :data:`POLL_MAX`), for up to ``wait_seconds``;
    then let the last :class:`NoFreeSlot` through."""
    deadline = time.monotonic() + wait_seconds
    pause = POLL_START
    while True:
        try:
            return await attempt()
        except NoFreeSlot:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX)

"""Fair scheduling between API keys: captures wait in Redis, one list per owner, until a
dispatcher releases them into the Celery capture queue round-robin across owners.

Celery's queue is first-in first-out: a key submitting a batch of 100 would make another
key's single capture wait behind all of them. So new captures do not go to Celery at submit.
:meth:`FairQueue.submit` writes the job's record, joins a capture in flight (single-flight)
or appends the job to its owner's list, and wakes a dispatcher, all in one Lua script (one
round trip, nothing lost if the API dies half-way). The dispatcher
(:mod:`worker.dispatcher`) keeps only ``ahead`` captures released but not started in the
broker: :meth:`FairQueue.claim` takes one job from each owner in turn until that many are
ahead. A key's new job therefore waits behind at most ``ahead`` released jobs plus one job of
every other key with work waiting, however much they submitted.

No job is lost between claim and publish: a claim moves each job into the ``releasing`` set
with a lease; :meth:`FairQueue.published` drops it once Celery has the message. A
dispatcher that dies in between leaves entries whose lease runs out, and the next claim (by
any dispatcher) hands them out again unless their task has started meanwhile. A job
published twice is harmless: its second run finds it finished (and does nothing) or running.

Every Redis key lives in the status Redis, whatever the broker (Redis or RabbitMQ).
Retries with a countdown and the sweeper's recoveries go to Celery directly: those jobs
were released already.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.constants import (
    FAIR_DISPATCHED_KEY,
    FAIR_JOBS_PREFIX,
    FAIR_OWNERS_KEY,
    FAIR_RELEASING_KEY,
    FAIR_WAITING_KEY,
    FAIR_WAKE_KEY,
    FOLLOWERS_PREFIX,
    JOB_KEY_PREFIX,
    PENDING_JOBS_KEY,
    fair_jobs_key,
    job_key,
    recent_jobs_key,
)
from shared.jobs import Job
from shared.result_cache import INFLIGHT_TTL_SECONDS, inflight_key, owner_of
from shared.scripts import load_script
from shared.status_store import StatusStore, redis_errors

#: Seconds a claimed job may stay unpublished before another dispatcher publishes it again.
RELEASE_LEASE_SECONDS = 30.0

#: Most jobs one claim hands out (the deficit is normally far below it).
MAX_CLAIM = 500


@dataclass(frozen=True, slots=True)
class Release:
    """A job a claim handed out: publish its capture task with these correlation values."""

    job_id: str
    request_id: str | None
    traceparent: str | None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _json_str(raw: bytes | str) -> str | None:
    text = _text(raw)
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, str) else None


class FairQueue:
    """The per-owner waiting lists and the dispatchers' bookkeeping, in the status Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        store: StatusStore,
        *,
        ahead: int,
        stale_after: float,
        lease_seconds: float = RELEASE_LEASE_SECONDS,
    ) -> None:
        """``ahead``: captures kept released but not started; ``stale_after``: seconds after
        which a released capture that never started stops counting (the broker's visibility
        timeout: its message is presumed lost, the sweeper takes over)."""
        self.redis = redis
        self.store = store
        self.ahead = ahead
        self.stale_after = stale_after
        self.lease_seconds = lease_seconds
        self._submit = load_script(redis, __name__, "fair_submit")
        self._claim = load_script(redis, __name__, "fair_claim")

    async def submit(self, job: Job, *, digest: str | None = None) -> str | None:
        """Record ``job`` (queued) and queue it behind its owner's earlier captures.

        With ``digest`` (the options digest; single-flight on), a job identical to one in
        flight joins it instead of being queued: the leader's id is returned and the job
        must not be captured. One atomic round trip either way.
        """
        keys, args = self._submit_call(job, digest=digest)
        with redis_errors():
            leader = await self._submit(keys=keys, args=args)
        return _text(leader) if leader else None

    async def submit_many(self, jobs: list[Job]) -> None:
        """Record and queue ``jobs`` like :meth:`submit` without single-flight, in one
        pipelined round trip (each job's script still atomic on its own)."""
        if not jobs:
            return
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for job in jobs:
                    keys, args = self._submit_call(job, digest=None)
                    await self._submit(keys=keys, args=args, client=pipe)
                await pipe.execute()

    def _submit_call(self, job: Job, *,
                     digest: str | None) -> tuple[list[str], list[str | int | float]]:
        owner = owner_of(job.api_key_id)
        keys = [job_key(job.id), PENDING_JOBS_KEY, recent_jobs_key(job.api_key_id),
                fair_jobs_key(job.api_key_id), FAIR_OWNERS_KEY, FAIR_WAITING_KEY,
                FAIR_WAKE_KEY, FAIR_WAKE_KEY]  # the last one: the inflight key, when used
        extra: list[str | int | float] = [owner, "", JOB_KEY_PREFIX, FOLLOWERS_PREFIX]
        if digest is not None:
            keys[7] = inflight_key(owner, digest)
            extra[1] = INFLIGHT_TTL_SECONDS
        base = self.store.create_args(job)
        return keys, [*base[:5], *extra, *base[5:]]

    async def claim(self) -> list[Release]:
        """Hand out the jobs to publish now: those whose earlier claim was never confirmed
        (lease run out, task not started), then up to the deficit below ``ahead``, one per
        owner in turn. Publish each, then call :meth:`published`."""
        args: list[str | int | float] = [
            self.ahead, self.lease_seconds, self.stale_after, self.store.queued_deadline,
            FAIR_JOBS_PREFIX, JOB_KEY_PREFIX, MAX_CLAIM,
        ]
        keys = [FAIR_OWNERS_KEY, FAIR_WAITING_KEY, FAIR_DISPATCHED_KEY, FAIR_RELEASING_KEY,
                PENDING_JOBS_KEY]
        with redis_errors():
            reply = await self._claim(keys=keys, args=args)
        return [Release(_text(reply[i]), _json_str(reply[i + 1]), _json_str(reply[i + 2]))
                for i in range(0, len(reply), 3)]

    async def published(self, job_ids: list[str]) -> None:
        """Confirm that Celery has the capture tasks of ``job_ids`` (their claims end)."""
        if job_ids:
            with redis_errors():
                await self.redis.zrem(FAIR_RELEASING_KEY, *job_ids)

    async def wait_for_work(self, timeout: float) -> bool:
        """Block until a capture is submitted or a released one starts (True), or until
        ``timeout`` seconds pass (False). Use a client whose socket timeout exceeds it."""
        with redis_errors():
            woken = await self.redis.blpop([FAIR_WAKE_KEY], timeout=timeout)
        return woken is not None

    async def waiting(self) -> int:
        """How many captures wait for their turn (not yet released)."""
        with redis_errors():
            return int(await self.redis.llen(FAIR_WAITING_KEY))

    async def ahead_now(self) -> int:
        """How many released captures have not started yet (stale entries included)."""
        with redis_errors():
            return int(await self.redis.zcard(FAIR_DISPATCHED_KEY))

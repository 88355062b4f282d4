"""Job status records in Redis: one hash per job, transitions atomic and one-way.

Each hash field holds one JSON-encoded top-level field of :class:`shared.jobs.Job`, so a
transition only writes the fields it changes. Transitions run as one Lua script each, which
checks the current status first: a job never moves back from ``succeeded`` or ``failed``.

Every non-terminal job is also a member of one sorted set (:data:`PENDING_JOBS_KEY`) scored
by its deadline on the Redis clock: a queued job must have started by then, a running one
must have finished. The same scripts keep that index, so it can never disagree with the
records; the sweeper (:mod:`worker.sweeper`) reads it to find jobs whose worker or queue
message was lost.

A worker's transitions also do, in the same script, what must happen with them: starting
an attempt takes its fleet slot (:mod:`shared.semaphore`) and tells the fair queue the
job's task has left the broker; recording the outcome gives the slot back, and a final
outcome indexes the result cache and ends the job's single-flight (an :class:`Ending`,
built by :meth:`shared.completion.Completion.ending`). One round trip per transition.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.constants import (
    FAIR_DISPATCHED_KEY,
    FAIR_WAKE_KEY,
    PENDING_JOBS_KEY,
    RECENT_JOBS_CAP,
    job_key,
    recent_jobs_key,
)
from shared.errors import JobLost, JobNotFound, NoFreeSlot, StoreUnavailable
from shared.jobs import Job, JobError, JobStatus, StoredResult, utcnow
from shared.scripts import load_script

if TYPE_CHECKING:
    from shared.semaphore import Lease

#: Error code of a job the sweeper gave up on.
LOST = JobLost.code


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis connection failures into :class:`StoreUnavailable`."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc


def _encode(fields: Mapping[str, Any]) -> dict[str, str]:
    return {name: json.dumps(value, separators=(",", ":")) for name, value in fields.items()}


def _decode(raw: Mapping[Any, Any] | list[bytes]) -> Job:
    if isinstance(raw, list):
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    return Job.model_validate({k.decode(): json.loads(v) for k, v in raw.items()})


#: Default seconds a queued job may wait before the sweeper presumes its message lost.
DEFAULT_QUEUED_DEADLINE = 1800.0

#: Default seconds a running job may take (its own timeout is not known to every caller).
DEFAULT_RUNNING_DEADLINE = 180.0


@dataclass(frozen=True, slots=True)
class Ending:
    """What a job's final transition also does when it moves (``lua/capture_ended.lua``):
    index the result in the result cache (``cache_entry`` under ``cache_key`` for
    ``cache_ttl`` seconds; "" indexes nothing) and end the job's single-flight, returning
    the followers that joined its capture."""

    inflight_key: str
    followers_key: str
    cache_key: str
    cache_entry: str = ""
    cache_ttl: int = 0


@dataclass(frozen=True, slots=True)
class Ended:
    """A final transition's answer: the finished job (``None`` when it had already finished
    or is gone) and the followers to finish with its outcome."""

    job: Job | None
    followers: list[str]


#: The KEYS of a transition that uses none of its optional parts.
_NO_KEYS = ("", "", "", "", "", "")


class Recovery(StrEnum):
    """What the sweeper did to one job found past its deadline."""

    #: A retry parked for later (:meth:`StatusStore.mark_retrying` with ``park``) is due.
    retry = "retry"
    #: The job's worker or queue message is presumed lost: it goes back to the queue.
    requeue = "requeue"
    #: Recovered too often (or its last attempt's worker died): failed with ``error.code`` lost.
    lost = "lost"


class StatusStore:
    """Reads and moves job status records. One instance per process, shared by all tasks.

    ``queued_deadline`` is how long a (re-)queued job may wait before the sweeper looks at it.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl_seconds: int,
        queued_deadline: float = DEFAULT_QUEUED_DEADLINE,
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.queued_deadline = queued_deadline
        self._transition = load_script(redis, __name__, "status_transition")
        self._create = load_script(redis, __name__, "status_create")
        self._recover = load_script(redis, __name__, "status_recover")

    async def create(self, job: Job) -> None:
        """Write a new job's record with the configured TTL, put it in the pending index and
        first among its owner's recent jobs (a set trimmed to :data:`RECENT_JOBS_CAP`).

        Captures are submitted through :meth:`shared.fair_queue.FairQueue.submit` instead,
        which also queues them; this is for jobs that need no capture of their own."""
        keys = [job_key(job.id), PENDING_JOBS_KEY, recent_jobs_key(job.api_key_id)]
        with redis_errors():
            await self._create(keys=keys, args=self.create_args(job))

    def create_args(self, job: Job) -> list[str | int | float]:
        """The ARGV of ``create_job`` Lua function (``lua/create_job.lua``) for ``job``: id, TTL, deadline,
        creation time, recent-jobs cap, then the record's field/value pairs."""
        args: list[str | int | float] = [job.id, self.ttl_seconds, self.queued_deadline,
                                         job.created_at.timestamp(), RECENT_JOBS_CAP]
        for name, value in _encode(job.model_dump(mode="json")).items():
            args += [name, value]
        return args

    async def recent(self, api_key_id: str | None, *, limit: int) -> list[Job]:
        """Up to ``limit`` of the owner's jobs, most recent first.

        Ids whose record has expired or was deleted are skipped and dropped from the set.
        """
        recent = recent_jobs_key(api_key_id)
        with redis_errors():
            members = await self.redis.zrevrange(recent, 0, limit - 1)
            ids = [member.decode() for member in members if isinstance(member, bytes)]
            if not ids:
                return []
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hgetall(job_key(job_id))
                records = await pipe.execute()
            stale = [job_id for job_id, raw in zip(ids, records, strict=True) if not raw]
            if stale:
                await self.redis.zrem(recent, *stale)
        return [_decode(raw) for raw in records if raw]

    async def delete(self, job_id: str) -> None:
        """Remove a record and its place in the pending index."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(job_key(job_id))
                pipe.zrem(PENDING_JOBS_KEY, job_id)
                await pipe.execute()

    async def get(self, job_id: str) -> Job:
        """The current record of ``job_id``; :class:`JobNotFound` when unknown or expired."""
        with redis_errors():
            raw = await self.redis.hgetall(job_key(job_id))
        if not raw:
            raise JobNotFound(f"no job with id {job_id!r}")
        return _decode(raw)

    async def mark_running(
        self,
        job_id: str,
        *,
        now: datetime | None = None,
        deadline_in: float = DEFAULT_RUNNING_DEADLINE,
        slot: Lease | None = None,
    ) -> Job | None:
        """Start an attempt: ``queued``/``running`` → ``running``, counting the attempt.

        ``deadline_in`` seconds from now the sweeper presumes the attempt's worker dead.
        Returns the updated job, or ``None`` when the job is already finished (a redelivered
        task must then do nothing) or no longer exists. With ``slot``, the attempt first
        takes that fleet slot (``slot.taken``); :class:`NoFreeSlot` when none is free (the
        job stays queued, nothing changed). No slot is taken for a job that cannot start.
        """
        fields = {"status": JobStatus.running.value, "started_at": (now or utcnow()).isoformat()}
        # The same script takes the job out of the fair queue's "released, not started" set
        # and wakes a dispatcher: no extra round trip.
        job, _ = await self._move(job_id, (JobStatus.queued, JobStatus.running), fields,
                                  deadline_in=deadline_in, count=True, starting=True, slot=slot)
        return job

    async def mark_retrying(
        self, job_id: str, error: JobError, *, retry_in: float = 0.0, park: bool = False,
        slot: Lease | None = None,
    ) -> Job | None:
        """Put a running job back to ``queued`` after a retryable failure, keeping the error.

        ``retry_in`` is the delay before the next attempt. With ``park`` no queue message
        carries the retry: the sweeper enqueues the job once ``retry_in`` has passed (for
        delays too long for a broker countdown). A held ``slot`` is given back.
        """
        fields = {"status": JobStatus.queued.value, "error": error.model_dump(mode="json"),
                  "parked": park}
        deadline_in = retry_in if park else retry_in + self.queued_deadline
        job, _ = await self._move(job_id, (JobStatus.running,), fields, deadline_in=deadline_in,
                                  slot=slot)
        return job

    async def mark_succeeded(
        self, job_id: str, result: StoredResult, *, now: datetime | None = None
    ) -> Job | None:
        """Finish a job successfully; ``None`` when it had already finished."""
        return (await self.finish(job_id, result, now=now)).job

    async def mark_failed(
        self, job_id: str, error: JobError, *, now: datetime | None = None
    ) -> Job | None:
        """Finish a job as failed with ``error``; ``None`` when it had already finished."""
        return (await self.finish(job_id, error, now=now)).job

    async def finish(
        self,
        job_id: str,
        outcome: StoredResult | JobError,
        *,
        now: datetime | None = None,
        slot: Lease | None = None,
        ending: Ending | None = None,
    ) -> Ended:
        """Finish a job: ``succeeded`` with a result, or ``failed`` with an error.

        In the same script, a held ``slot`` is given back (whatever happens) and, when the
        job finishes with this call, its ``ending`` is done (result cache, single-flight;
        the followers come back in the answer). The job is ``None`` when it had already
        finished or is gone; then the ending is left to whoever finished it.
        """
        finished_at = (now or utcnow()).isoformat()
        fields: dict[str, Any]
        if isinstance(outcome, StoredResult):
            fields = {"status": JobStatus.succeeded.value, "finished_at": finished_at,
                      "result": outcome.model_dump(mode="json"), "error": None}
        else:
            fields = {"status": JobStatus.failed.value, "finished_at": finished_at,
                      "error": outcome.model_dump(mode="json")}
        job, followers = await self._move(job_id, (JobStatus.queued, JobStatus.running), fields,
                                          slot=slot, ending=ending)
        return Ended(job=job, followers=followers)

    async def overdue(self, *, limit: int = 100) -> list[str]:
        """Ids of up to ``limit`` non-terminal jobs past their deadline (Redis clock), oldest first."""
        with redis_errors():
            seconds, micros = await self.redis.time()
            members = await self.redis.zrange(
                PENDING_JOBS_KEY, "-inf", seconds + micros / 1_000_000,
                byscore=True, offset=0, num=limit,
            )
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def pending_count(self) -> int:
        """How many jobs are queued or running (the size of the pending index)."""
        with redis_errors():
            return int(await self.redis.zcard(PENDING_JOBS_KEY))

    async def recover(
        self,
        job_id: str,
        *,
        max_recoveries: int,
        max_attempts: int,
        now: datetime | None = None,
    ) -> tuple[Recovery, Job] | None:
        """Recover ``job_id`` if it is still past its deadline (atomic; see :class:`Recovery`).

        A job is failed with ``error.code`` ``"lost"`` once it was recovered
        ``max_recoveries`` times, or when the worker of its last allowed attempt died.
        ``None`` when the job moved on meanwhile, finished, or is gone.
        """
        error = JobError(
            code=LOST,
            message="the job was lost: its worker died or its queue message vanished, "
            "and it could not be recovered",
        )
        args: list[str | int | float] = [
            job_id, max_recoveries, max_attempts, self.queued_deadline,
            json.dumps(error.model_dump(mode="json"), separators=(",", ":")),
            json.dumps((now or utcnow()).isoformat()),
        ]
        with redis_errors():
            reply = await self._recover(keys=[job_key(job_id), PENDING_JOBS_KEY], args=args)
        action = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if action == "skip":
            return None
        return Recovery(action), _decode(reply[1:])

    async def _move(
        self,
        job_id: str,
        allowed_from: tuple[JobStatus, ...],
        fields: Mapping[str, Any],
        *,
        deadline_in: float | None = None,
        count: bool = False,
        starting: bool = False,
        slot: Lease | None = None,
        ending: Ending | None = None,
    ) -> tuple[Job | None, list[str]]:
        """Run ``lua/status_transition.lua``; the moved job (``None`` when refused or gone)
        and the followers its ending returned."""
        keys = [job_key(job_id), PENDING_JOBS_KEY, *_NO_KEYS]
        args: list[str | int | float] = [
            ",".join(s.value for s in allowed_from),
            "1" if count else "0",
            job_id,
            "" if deadline_in is None else repr(float(deadline_in)),
            "1" if starting else "0",
            "", "", 0, 0,  # the slot: what to do, token, limit, lease seconds
            "0", "", 0,  # the ending: whether, cache entry, its TTL
        ]
        if starting:
            keys[2:4] = [FAIR_DISPATCHED_KEY, FAIR_WAKE_KEY]
        taking = slot is not None and starting and not slot.taken
        giving = slot is not None and not starting and slot.held
        if slot is not None and (taking or giving):
            keys[4] = slot.key
            args[5:9] = ["take" if taking else "give", slot.token, slot.limit, slot.lease_seconds]
        if ending is not None:
            keys[5:8] = [ending.inflight_key, ending.followers_key, ending.cache_key]
            args[9:12] = ["1", ending.cache_entry, ending.cache_ttl]
        for name, value in _encode(fields).items():
            args += [name, value]
        with redis_errors():
            reply = await self._transition(keys=keys, args=args)
        if slot is not None and giving:
            slot.released = True
        flag = int(reply[0])
        if flag == -2:
            raise NoFreeSlot(f"every slot of {keys[4]} is held; job {job_id} stays queued")
        if flag != 1:
            return None, []
        if slot is not None and taking:
            slot.taken = True
        followers = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in reply[1])
        return _decode(reply[2:]), followers

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless Redis answers."""
        with redis_errors():
            await self.redis.ping()

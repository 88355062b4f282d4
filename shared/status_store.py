"""Job status records in Redis: one hash per job, transitions atomic and one-way.

Each hash field holds one JSON-encoded top-level field of :class:`shared.jobs.Job`, so a
transition only writes the fields it changes. Transitions run as one Lua script each, which
checks the current status first: a job never moves back from ``succeeded`` or ``failed``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.constants import RECENT_JOBS_CAP, job_key, recent_jobs_key
from shared.errors import JobNotFound, StoreUnavailable
from shared.jobs import Job, JobError, JobStatus, StoredResult, utcnow

# KEYS[1] job hash. ARGV[1] comma-separated statuses the job may be in; ARGV[2] "1" to count an
# attempt; ARGV[3..] field/value pairs to write. Returns {flag, HGETALL...}: flag 1 = done,
# 0 = refused (status not allowed), -1 = no such job.
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {-1} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if ('"' .. s .. '"') == current then allowed = true end
end
if not allowed then
  local out = redis.call('HGETALL', KEYS[1])
  table.insert(out, 1, 0)
  return out
end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 1)
return out
"""


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


class StatusStore:
    """Reads and moves job status records. One instance per process, shared by all tasks."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._transition = redis.register_script(_TRANSITION)

    async def create(self, job: Job) -> None:
        """Write a new job's record with the configured TTL, and list it first among its
        owner's recent jobs (a set trimmed to :data:`RECENT_JOBS_CAP`), in one round trip."""
        key = job_key(job.id)
        recent = recent_jobs_key(job.api_key_id)
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=_encode(job.model_dump(mode="json")))  # type: ignore[arg-type]
                pipe.expire(key, self.ttl_seconds)
                pipe.zadd(recent, {job.id: job.created_at.timestamp()})
                pipe.zremrangebyrank(recent, 0, -RECENT_JOBS_CAP - 1)
                pipe.expire(recent, self.ttl_seconds)
                await pipe.execute()

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
        """Remove a record (used when a job could not be enqueued at all)."""
        with redis_errors():
            await self.redis.delete(job_key(job_id))

    async def get(self, job_id: str) -> Job:
        """The current record of ``job_id``; :class:`JobNotFound` when unknown or expired."""
        with redis_errors():
            raw = await self.redis.hgetall(job_key(job_id))
        if not raw:
            raise JobNotFound(f"no job with id {job_id!r}")
        return _decode(raw)

    async def mark_running(self, job_id: str, *, now: datetime | None = None) -> Job | None:
        """Start an attempt: ``queued``/``running`` → ``running``, counting the attempt.

        Returns the updated job, or ``None`` when the job is already finished (a redelivered
        task must then do nothing) or no longer exists.
        """
        fields = {"status": JobStatus.running.value, "started_at": (now or utcnow()).isoformat()}
        return await self._move(job_id, (JobStatus.queued, JobStatus.running), fields, count=True)

    async def mark_retrying(self, job_id: str, error: JobError) -> Job | None:
        """Put a running job back to ``queued`` after a retryable failure, keeping the error."""
        fields = {"status": JobStatus.queued.value, "error": error.model_dump(mode="json")}
        return await self._move(job_id, (JobStatus.running,), fields)

    async def mark_succeeded(
        self, job_id: str, result: StoredResult, *, now: datetime | None = None
    ) -> Job | None:
        """Finish a job successfully; ``None`` when it had already finished."""
        fields = {
            "status": JobStatus.succeeded.value,
            "finished_at": (now or utcnow()).isoformat(),
            "result": result.model_dump(mode="json"),
            "error": None,
        }
        return await self._move(job_id, (JobStatus.queued, JobStatus.running), fields)

    async def mark_failed(
        self, job_id: str, error: JobError, *, now: datetime | None = None
    ) -> Job | None:
        """Finish a job as failed with ``error``; ``None`` when it had already finished."""
        fields = {
            "status": JobStatus.failed.value,
            "finished_at": (now or utcnow()).isoformat(),
            "error": error.model_dump(mode="json"),
        }
        return await self._move(job_id, (JobStatus.queued, JobStatus.running), fields)

    async def _move(
        self,
        job_id: str,
        allowed_from: tuple[JobStatus, ...],
        fields: Mapping[str, Any],
        *,
        count: bool = False,
    ) -> Job | None:
        args: list[str] = [",".join(s.value for s in allowed_from), "1" if count else "0"]
        for name, value in _encode(fields).items():
            args += [name, value]
        with redis_errors():
            reply = await self._transition(keys=[job_key(job_id)], args=args)
        flag = int(reply[0])
        if flag != 1:
            return None
        return _decode(reply[1:])

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless Redis answers."""
        with redis_errors():
            await self.redis.ping()

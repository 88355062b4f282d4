"""Deleting results: on request (``DELETE /v1/jobs/{id}``) and after a retention period.

What a job stored is found the same way for both: every object key on its result record
(picture, thumbnail or poster frame, content outputs, whatever kind a feature adds, as long
as the record names it in a ``key`` field), plus every object whose key starts with the
job's own prefix (``results/<job id>``), in the storage that holds them (the default one,
or the customer's bucket the record names).

Objects belong to the job that captured them. A job answered by another job's capture
(``capture_of``: the result cache, single-flight) shares that job's objects: deleting it
removes its record only, and once the capturing job's files are gone (deleted or expired)
the sharing jobs answer ``410 gone`` too (:func:`shared_result_gone`).

Retention: when a capture succeeds, :class:`RetentionListener` schedules the deletion of
its files ``RESULT_RETENTION_SECONDS`` later (or its API key's own ``retention_seconds``)
in a sorted set, with the list of what to delete kept beside it (the job record may expire
first). :class:`RetentionSweeper` (a loop of :mod:`worker.background`) deletes what is due
and marks the record ``result_expired_at``. Entries are claimed with a lease, so any number
of workers may sweep and a sweeper that dies mid-way leaves its claims to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog

from shared.apikeys import KeyStore
from shared.constants import (
    RESULTS_PREFIX,
    RETENTION_DUE_KEY,
    RETENTION_OBJECTS_KEY,
    job_key,
    recent_jobs_key,
)
from shared.errors import (
    ApiKeyNotFound,
    JobNotFinished,
    JobNotFound,
    ShotlineError,
    StorageError,
)
from shared.jobs import Job, JobStatus
from shared.status_store import StatusStore, redis_errors
from shared.storage.base import Storage

log = structlog.get_logger("shotline.retention")

#: How long a sweeper holds a claimed deletion before another sweeper may take it over.
CLAIM_LEASE_SECONDS = 300
#: Most deletions one sweep handles.
SWEEP_BATCH = 100

# KEYS[1] due set. ARGV[1] now, ARGV[2] lease (s), ARGV[3] most entries.
# Claims due entries by moving their score a lease into the future; returns their ids.
_CLAIM = """
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), member)
end
return due
"""

# KEYS[1] job record. ARGV[1] JSON-encoded expiry time. Marks an existing record only (HSET
# on a missing key would create a record without a job).
_MARK_EXPIRED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'result_expired_at', ARGV[1])
  return 1
end
return 0
"""


class StorageResolver(Protocol):
    """Finds the storage holding a result: the default one or a customer's bucket."""

    def for_destination(self, destination: Mapping[str, Any] | None) -> Storage:
        """The storage the result record's ``destination`` names (None: the default)."""
        ...


@dataclass(frozen=True, slots=True)
class StoredObjects:
    """What deleting a job's files removes: listed keys, a prefix, and where they are."""

    keys: tuple[str, ...]
    prefix: str | None
    destination: Mapping[str, Any] | None = None

    def to_json(self) -> str:
        """The form kept in the retention index."""
        return json.dumps({"keys": list(self.keys), "prefix": self.prefix,
                           "destination": self.destination}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredObjects:
        """Read the retention index's form back."""
        data = json.loads(raw)
        return cls(keys=tuple(data.get("keys") or ()), prefix=data.get("prefix"),
                   destination=data.get("destination"))


def _keys_in(value: Any) -> Iterator[str]:
    """Every string held in a field called ``key``, at any depth."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            if name == "key" and isinstance(item, str):
                yield item
            else:
                yield from _keys_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _keys_in(item)


def job_prefix(job_id: str) -> str:
    """The key prefix every object a job stores starts with (``results/<job id>``)."""
    return f"{RESULTS_PREFIX}{job_id}"


def owned_objects(job: Job) -> StoredObjects | None:
    """The objects ``job`` stored itself; None for a job sharing another job's capture."""
    if job.capture_of is not None or job.cached:
        return None
    result = job.result.model_dump(mode="json") if job.result is not None else {}
    destination = result.pop("destination", None)
    keys = tuple(dict.fromkeys(_keys_in(result)))
    prefix = (destination or {}).get("prefix", "") + job_prefix(job.id)
    return StoredObjects(keys=keys, prefix=prefix, destination=destination)


async def delete_objects(storages: StorageResolver, objects: StoredObjects) -> int:
    """Delete every listed object and every object under the prefix; how many keys were
    deleted (deleting a missing object is no error, so this is idempotent)."""
    storage = storages.for_destination(objects.destination)
    keys = set(objects.keys)
    if objects.prefix is not None:
        try:
            keys.update(await storage.list_keys(objects.prefix))
        except StorageError as exc:
            # A customer's bucket may grant Put/Get/Delete but not List: the listed keys
            # still go (and a storage that is down fails on them below).
            log.warning("could not list a job's objects; deleting the listed ones",
                        prefix=objects.prefix, error=exc.message)
    for key in sorted(keys):
        await storage.delete(key)
    return len(keys)


class RetentionIndex:
    """The scheduled deletions: a sorted set of job ids by due time, and what each removes."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)

    async def schedule(self, job_id: str, objects: StoredObjects, *, at: float) -> None:
        """Delete ``objects`` at Unix time ``at`` (rescheduling replaces the earlier entry)."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(RETENTION_OBJECTS_KEY, job_id, objects.to_json())
                pipe.zadd(RETENTION_DUE_KEY, {job_id: at})
                await pipe.execute()

    async def due_at(self, job_id: str) -> float | None:
        """When ``job_id``'s files are due for deletion, if scheduled."""
        with redis_errors():
            score = await self.redis.zscore(RETENTION_DUE_KEY, job_id)
        return None if score is None else float(score)

    async def claim(self, *, now: float | None = None, limit: int = SWEEP_BATCH,
                    lease: float = CLAIM_LEASE_SECONDS) -> list[tuple[str, StoredObjects | None]]:
        """Claim up to ``limit`` due deletions for ``lease`` seconds; (job id, objects)."""
        with redis_errors():
            members = await self._claim(keys=[RETENTION_DUE_KEY],
                                        args=[now or time.time(), lease, limit])
            ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
            raws = await self.redis.hmget(RETENTION_OBJECTS_KEY, ids) if ids else []
        return [(job_id, None if raw is None else StoredObjects.from_json(raw))
                for job_id, raw in zip(ids, raws, strict=True)]

    async def forget(self, job_id: str) -> None:
        """Drop ``job_id``'s scheduled deletion (done, or its job deleted meanwhile)."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(RETENTION_DUE_KEY, job_id)
                pipe.hdel(RETENTION_OBJECTS_KEY, job_id)
                await pipe.execute()


async def retention_seconds(keys: KeyStore, api_key_id: str | None, default: int | None
                            ) -> int | None:
    """How long ``api_key_id``'s results are kept: its own ``retention_seconds``, else
    ``default`` (None: until deleted by hand)."""
    if api_key_id is None:
        return default
    try:
        record = await keys.get(api_key_id)
    except ApiKeyNotFound:
        return default
    return record.retention_seconds if record.retention_seconds is not None else default


class RetentionListener:
    """A pipeline listener: schedules the deletion of each succeeded capture's files."""

    def __init__(self, index: RetentionIndex, keys: KeyStore, *, default: int | None) -> None:
        self.index = index
        self.keys = keys
        self.default = default

    async def job_finished(self, job: Job) -> None:
        """Schedule ``job``'s files for deletion when its owner's results have a retention."""
        if job.status is not JobStatus.succeeded:
            return
        objects = owned_objects(job)
        if objects is None:
            return
        seconds = await retention_seconds(self.keys, job.api_key_id, self.default)
        if seconds is None:
            return
        finished = (job.finished_at or datetime.now(UTC)).timestamp()
        await self.index.schedule(job.id, objects, at=finished + seconds)
        log.debug("result deletion scheduled", job_id=job.id, retention_seconds=seconds)


async def delete_job(store: StatusStore, storages: StorageResolver, index: RetentionIndex,
                     job: Job) -> int:
    """Delete ``job``'s files (those it captured itself) and then its record; returns how
    many objects were deleted. A job still queued or running is refused
    (:class:`JobNotFinished`): its capture would write files after the deletion.

    Files go first: when storage fails, the record stays and the deletion can be retried.
    """
    if not job.status.is_terminal:
        raise JobNotFinished(f"job {job.id} is {job.status.value}; delete it once it has ended")
    objects = owned_objects(job)
    deleted = 0 if objects is None else await delete_objects(storages, objects)
    await index.forget(job.id)
    await store.delete(job.id)
    with redis_errors():
        await store.redis.zrem(recent_jobs_key(job.api_key_id), job.id)
    log.info("job deleted", job_id=job.id, api_key_id=job.api_key_id, objects=deleted)
    return deleted


async def shared_result_gone(store: StatusStore, job: Job) -> Job:
    """``job`` marked ``result_expired_at`` when it shares another job's capture whose files
    are gone (that job was deleted, or its retention ended); ``job`` itself otherwise."""
    if job.capture_of is None or job.result is None or job.result_expired_at is not None:
        return job
    try:
        source = await store.get(job.capture_of)
    except JobNotFound:
        expired = job.finished_at or datetime.now(UTC)
    else:
        if source.result_expired_at is None:
            return job
        expired = source.result_expired_at
    return job.model_copy(update={"result_expired_at": expired})


class RetentionSweeper:
    """Deletes the files whose retention ended (a :class:`worker.background.Loop`)."""

    def __init__(self, redis: aioredis.Redis, storages: StorageResolver, *,
                 interval: float) -> None:
        self.redis = redis
        self.index = RetentionIndex(redis)
        self.storages = storages
        self.interval = interval
        self._mark = redis.register_script(_MARK_EXPIRED)

    async def sweep(self, *, now: float | None = None) -> list[str]:
        """Delete every claimed due entry's files and mark its record; the job ids done."""
        done: list[str] = []
        for job_id, objects in await self.index.claim(now=now):
            if objects is not None:
                try:
                    count = await delete_objects(self.storages, objects)
                except ShotlineError as exc:
                    # Left claimed: tried again once the lease runs out.
                    log.warning("could not delete an expired result; trying again later",
                                job_id=job_id, error=exc.message)
                    continue
                expired = datetime.now(UTC).isoformat()
                with redis_errors():
                    await self._mark(keys=[job_key(job_id)], args=[json.dumps(expired)])
                log.info("result deleted after its retention period", job_id=job_id,
                         objects=count)
            await self.index.forget(job_id)
            done.append(job_id)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set; survives Redis outages."""
        while not stop.is_set():
            try:
                await self.sweep()
            except ShotlineError as exc:
                log.warning("retention sweep failed; trying again later", error=exc.message)
            except Exception:
                log.exception("retention sweep crashed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)


__all__ = [
    "RetentionIndex",
    "RetentionListener",
    "RetentionSweeper",
    "StorageResolver",
    "StoredObjects",
    "delete_job",
    "delete_objects",
    "owned_objects",
    "retention_seconds",
    "shared_result_gone",
]

"""Reusing captures: the result cache and single-flight, both scoped to one owner (API key).

The cache key of a request is the SHA-256 of its normalised capture options (every
:class:`~shared.jobs.CaptureOptions` field, defaults included, as canonical JSON), so
delivery fields such as ``webhook_url`` never split the cache. Two Redis keys per
(owner, options):

- ``cache:<owner>:<digest>`` → the latest succeeded job with these options and when it
  finished; a request accepts it when it is younger than its ``cache_ttl``.
- ``inflight:<owner>:<digest>`` → the job capturing these options right now. An identical
  request arriving meanwhile becomes a *follower*: its job waits in
  ``followers:<leader>`` and is finished with the leader's outcome (see
  :mod:`shared.completion`), so both share one capture.

Joining and releasing are Lua scripts, so a follower either joins before the leader
releases (and is finished by it) or finds the leader finished and captures itself.
"""

from __future__ import annotations

import hashlib
import json
import time

import redis.asyncio as aioredis

from shared.constants import (
    ANONYMOUS_OWNER,
    CACHE_PREFIX,
    FOLLOWERS_PREFIX,
    INFLIGHT_PREFIX,
    JOB_KEY_PREFIX,
)
from shared.errors import JobNotFound
from shared.jobs import CaptureOptions, Job, JobStatus, StoredResult
from shared.scripts import load_script
from shared.status_store import Ending, StatusStore, redis_errors

#: How long a leader is remembered at most: far beyond any capture with its retries.
INFLIGHT_TTL_SECONDS = 3600
#: Longest a cache entry is kept, whatever the job TTL.
MAX_INDEX_TTL_SECONDS = 30 * 24 * 3600


def options_digest(options: CaptureOptions) -> str:
    """SHA-256 (hex) of the canonical JSON of every capture option, defaults included."""
    canonical = json.dumps(options.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def inflight_key(owner: str, digest: str) -> str:
    """Redis key naming the job capturing ``owner``'s options ``digest`` right now."""
    return f"{INFLIGHT_PREFIX}{owner}:{digest}"


def owner_of(api_key_id: str | None) -> str:
    """The name work is scoped to: the API key id, or the anonymous owner."""
    return api_key_id or ANONYMOUS_OWNER


class ResultCache:
    """The result cache and the single-flight registry of one Redis."""

    def __init__(self, redis: aioredis.Redis, store: StatusStore, *, index_ttl_seconds: int) -> None:
        self.redis = redis
        self.store = store
        self.index_ttl_seconds = min(index_ttl_seconds, MAX_INDEX_TTL_SECONDS)
        self._lead_or_join = load_script(redis, __name__, "cache_lead_or_join")
        self._finished = load_script(redis, __name__, "cache_finished")

    @staticmethod
    def _keys(owner: str, digest: str) -> tuple[str, str]:
        return f"{CACHE_PREFIX}{owner}:{digest}", inflight_key(owner, digest)

    async def lookup(self, owner: str, digest: str, *, max_age: int, now: float | None = None
                     ) -> Job | None:
        """The succeeded job with these options finished at most ``max_age`` seconds ago."""
        cache_key, _ = self._keys(owner, digest)
        with redis_errors():
            raw = await self.redis.get(cache_key)
        if raw is None:
            return None
        entry = json.loads(raw)
        if (now or time.time()) - float(entry["finished_at"]) > max_age:
            return None
        try:
            job = await self.store.get(str(entry["job_id"]))
        except JobNotFound:
            return None
        if (job.status is not JobStatus.succeeded or job.result is None
                or job.result_expired_at is not None):
            return None
        return job

    async def lead_or_join(self, owner: str, digest: str, job_id: str) -> str | None:
        """Register ``job_id`` as the capture of these options, or join the one in flight.

        Returns the leader's id when ``job_id`` joined it (it must then not be captured),
        ``None`` when ``job_id`` leads.
        """
        _, inflight = self._keys(owner, digest)
        with redis_errors():
            leader = await self._lead_or_join(
                keys=[inflight],
                args=[job_id, INFLIGHT_TTL_SECONDS, JOB_KEY_PREFIX, FOLLOWERS_PREFIX],
            )
        return leader.decode() if leader else None

    def ending(self, job: Job, *, result: StoredResult | None, finished_at: float,
               index: bool = True) -> Ending:
        """What ``job``'s final transition does to the cache and its single-flight (see
        :class:`~shared.status_store.Ending`): with ``index``, a succeeded ``result`` is
        indexed so identical requests can reuse it (finished at ``finished_at``, Unix time)."""
        cache_key, inflight = self._keys(owner_of(job.api_key_id), options_digest(job.options))
        entry = ""
        # A blank picture is never reused as a good answer (a slow page may render next time).
        if index and result is not None and not result.blank:
            entry = json.dumps({"job_id": job.id, "finished_at": finished_at})
        return Ending(inflight_key=inflight, followers_key=f"{FOLLOWERS_PREFIX}{job.id}",
                      cache_key=cache_key, cache_entry=entry, cache_ttl=self.index_ttl_seconds)

    async def finished(self, job: Job, *, index: bool = True) -> list[str]:
        """``job`` ended: index it (with ``index``, when it succeeded) so identical requests
        can reuse it, and end its single-flight, in one round trip. Returns the followers to
        finish with its outcome. (A worker's final transition does this itself.)"""
        succeeded = job.status is JobStatus.succeeded
        finished = job.finished_at.timestamp() if job.finished_at else time.time()
        ending = self.ending(job, result=job.result if succeeded else None, finished_at=finished,
                             index=index)
        with redis_errors():
            followers = await self._finished(
                keys=[ending.inflight_key, ending.followers_key, ending.cache_key],
                args=[job.id, ending.cache_entry, ending.cache_ttl],
            )
        return sorted(member.decode() for member in followers)

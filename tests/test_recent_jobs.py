"""The recent-jobs index behind ``GET /v1/jobs`` and the console's gallery, on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import redis as sync_redis

from shared.connections import create_redis
from shared.constants import RECENT_JOBS_CAP, job_key, recent_jobs_key
from shared.jobs import CaptureOptions, Job, JobStatus, new_job_id, utcnow
from shared.status_store import StatusStore

T = TypeVar("T")
START = utcnow()


def make_job(n: int, **overrides: Any) -> Job:
    values: dict[str, Any] = {
        "id": new_job_id(), "status": JobStatus.queued,
        "created_at": START + timedelta(milliseconds=n),
        "options": CaptureOptions(url=f"https://example.com/{n}"),
    }
    return Job(**(values | overrides))


def run(redis_url: str, scenario: Callable[[StatusStore], Awaitable[T]], ttl: int = 3600) -> T:
    async def main() -> T:
        client = create_redis(redis_url)
        try:
            return await scenario(StatusStore(client, ttl_seconds=ttl))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_recent_is_newest_first_per_owner(redis_url: str) -> None:
    anon = [make_job(n) for n in range(4)]
    alice = [make_job(n, api_key_id="key_alice") for n in range(2)]

    async def scenario(store: StatusStore) -> tuple[list[Job], list[Job], list[Job]]:
        for job in [*anon, *alice]:
            await store.create(job)
        return (await store.recent(None, limit=3), await store.recent("key_alice", limit=10),
                await store.recent("key_bob", limit=10))

    mine, hers, nobody = run(redis_url, scenario)
    assert [job.id for job in mine] == [job.id for job in reversed(anon)][:3]
    assert [job.id for job in hers] == [job.id for job in reversed(alice)]
    assert nobody == []
    assert recent_jobs_key(None).endswith(":anon")


def test_the_index_expires_with_the_jobs_and_is_trimmed_to_the_cap(redis_url: str) -> None:
    jobs = [make_job(n) for n in range(RECENT_JOBS_CAP + 3)]

    async def scenario(store: StatusStore) -> list[Job]:
        for job in jobs:
            await store.create(job)
        return await store.recent(None, limit=5)

    newest = run(redis_url, scenario, ttl=600)
    assert [job.id for job in newest] == [job.id for job in reversed(jobs)][:5]
    client = sync_redis.Redis.from_url(redis_url)
    key = recent_jobs_key(None)
    assert client.zcard(key) == RECENT_JOBS_CAP
    assert client.zscore(key, jobs[0].id) is None and client.zscore(key, jobs[3].id) is not None
    assert 0 < client.ttl(key) <= 600


def test_expired_or_deleted_records_are_skipped_and_dropped(redis_url: str) -> None:
    jobs = [make_job(n) for n in range(3)]

    async def scenario(store: StatusStore) -> list[Job]:
        for job in jobs:
            await store.create(job)
        await store.delete(jobs[1].id)
        await store.redis.delete(job_key(jobs[2].id))  # as if its TTL ran out
        return await store.recent(None, limit=10)

    assert [job.id for job in run(redis_url, scenario)] == [jobs[0].id]
    remaining = sync_redis.Redis.from_url(redis_url).zrange(recent_jobs_key(None), 0, -1)
    assert remaining == [jobs[0].id.encode()]

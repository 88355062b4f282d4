"""The status store against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import redis as sync_redis

from shared.connections import create_redis
from shared.constants import job_key
from shared.errors import JobNotFound, StoreUnavailable
from shared.jobs import CaptureOptions, Job, JobError, JobStatus, StoredResult, new_job_id, utcnow
from shared.status_store import StatusStore

T = TypeVar("T")
RESULT = StoredResult(key="results/x.png", content_type="image/png", bytes=3, width=1, height=1,
                      sha256="ab")


def make_job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "id": new_job_id(), "status": JobStatus.queued, "created_at": utcnow(),
        "options": CaptureOptions(url="https://example.com"), "request_id": "req-1",
    }
    values.update(overrides)
    return Job(**values)


@pytest.fixture
def run_with_store(redis_url: str) -> Callable[..., Any]:
    """Runs ``fn(store)`` in a fresh event loop with a store on the test Redis."""

    def run(fn: Callable[[StatusStore], Coroutine[Any, Any, T]], ttl: int = 3600) -> T:
        async def main() -> T:
            client = create_redis(redis_url)
            try:
                return await fn(StatusStore(client, ttl_seconds=ttl))
            finally:
                await client.aclose()

        return asyncio.run(main())

    return run


def test_create_and_get_round_trip(run_with_store: Callable[..., Any], redis_url: str) -> None:
    job = make_job()

    async def scenario(store: StatusStore) -> Job:
        await store.create(job)
        return await store.get(job.id)

    assert run_with_store(scenario, ttl=120) == job
    ttl = sync_redis.Redis.from_url(redis_url).ttl(job_key(job.id))
    assert 0 < ttl <= 120


def test_unknown_job_is_not_found(run_with_store: Callable[..., Any]) -> None:
    async def scenario(store: StatusStore) -> None:
        await store.get("nope")

    with pytest.raises(JobNotFound):
        run_with_store(scenario)


def test_running_counts_attempts_and_success_is_final(run_with_store: Callable[..., Any]) -> None:
    job = make_job()

    async def scenario(store: StatusStore) -> list[Any]:
        await store.create(job)
        first = await store.mark_running(job.id)
        second = await store.mark_running(job.id)  # a redelivery
        done = await store.mark_succeeded(job.id, RESULT)
        after_failed = await store.mark_failed(job.id, JobError(code="timeout", message="x"))
        after_running = await store.mark_running(job.id)
        return [first, second, done, after_failed, after_running, await store.get(job.id)]

    first, second, done, after_failed, after_running, final = run_with_store(scenario)
    assert (first.status, first.attempts) == (JobStatus.running, 1)
    assert second.attempts == 2
    assert done.status is JobStatus.succeeded and done.result == RESULT
    assert after_failed is None and after_running is None
    assert final.status is JobStatus.succeeded and final.error is None


def test_retrying_goes_back_to_queued_with_the_error(run_with_store: Callable[..., Any]) -> None:
    job = make_job()
    error = JobError(code="timeout", message="slow")

    async def scenario(store: StatusStore) -> Job | None:
        await store.create(job)
        await store.mark_running(job.id)
        return await store.mark_retrying(job.id, error)

    retried = run_with_store(scenario)
    assert retried is not None
    assert retried.status is JobStatus.queued and retried.error == error


def test_concurrent_finishers_only_one_wins(run_with_store: Callable[..., Any]) -> None:
    job = make_job()

    async def scenario(store: StatusStore) -> tuple[list[Any], Job]:
        await store.create(job)
        await store.mark_running(job.id)
        outcomes = await asyncio.gather(*(
            store.mark_succeeded(job.id, RESULT) if i % 2 else
            store.mark_failed(job.id, JobError(code="timeout", message="x"))
            for i in range(20)
        ))
        return outcomes, await store.get(job.id)

    outcomes, final = run_with_store(scenario)
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    assert final.status is winners[0].status


def test_unreachable_redis_raises_store_unavailable() -> None:
    async def scenario() -> None:
        client = create_redis("redis://127.0.0.1:1/0")
        try:
            await StatusStore(client, ttl_seconds=60).get("x")
        finally:
            await client.aclose()

    with pytest.raises(StoreUnavailable):
        asyncio.run(scenario())

"""The status store against a real redis-server: atomic one-way transitions, and what a
worker's transitions do in the same script (fleet slot, result cache, single-flight), with
their round trips counted by ``MONITOR``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import redis as sync_redis

from shared.batches import BatchStore
from shared.completion import Completion
from shared.connections import create_redis
from shared.constants import FAIR_DISPATCHED_KEY, job_key
from shared.errors import JobNotFound, NoFreeSlot, StoreUnavailable
from shared.jobs import CaptureOptions, Job, JobError, JobStatus, StoredResult, new_job_id, utcnow
from shared.result_cache import ResultCache, options_digest, owner_of
from shared.semaphore import FleetSemaphore
from shared.status_store import StatusStore
from tests.redis_monitor import Monitor

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


def run_with_parts(redis_url: str, fn: Callable[[StatusStore, ResultCache, FleetSemaphore],
                                                 Coroutine[Any, Any, T]]) -> T:
    """Runs ``fn`` with a store, a result cache and a one-slot fleet semaphore on the test Redis."""

    async def main() -> T:
        client = create_redis(redis_url)
        try:
            store = StatusStore(client, ttl_seconds=600)
            cache = ResultCache(client, store, index_ttl_seconds=600)
            return await fn(store, cache, FleetSemaphore(client, "engine", limit=1))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_an_attempt_takes_its_slot_in_the_running_transition(redis_url: str) -> None:
    first, second, done = make_job(), make_job(), make_job()
    sync = sync_redis.Redis.from_url(redis_url)

    async def scenario(store: StatusStore, _cache: ResultCache, slots: FleetSemaphore) -> None:
        for job in (first, second, done):
            await store.create(job)
        await store.mark_succeeded(done.id, RESULT)
        sync.zadd(FAIR_DISPATCHED_KEY, {second.id: 1.0})
        finished_lease = slots.lease(lease_seconds=30)
        assert await store.mark_running(done.id, slot=finished_lease) is None
        assert not finished_lease.taken and await slots.held() == 0  # no slot for a finished job

        lease = slots.lease(lease_seconds=30)
        with Monitor(redis_url) as monitor:
            running = await store.mark_running(first.id, slot=lease)
        assert monitor.sent == ["EVALSHA"]  # the slot and the move: one round trip
        assert running is not None and running.status is JobStatus.running
        assert lease.held and await slots.held() == 1

        waiting = slots.lease(lease_seconds=30)
        with pytest.raises(NoFreeSlot):
            await store.mark_running(second.id, slot=waiting)
        unchanged = await store.get(second.id)  # nothing changed: still queued, not counted,
        assert (unchanged.status, unchanged.attempts) == (JobStatus.queued, 0)
        assert sync.zscore(FAIR_DISPATCHED_KEY, second.id) is not None  # still ahead in the broker
        assert not waiting.taken

        with Monitor(redis_url) as monitor:
            retrying = await store.mark_retrying(
                first.id, JobError(code="engine_error", message="x"), retry_in=1, slot=lease)
        assert monitor.sent == ["EVALSHA"]  # the move gave the slot back
        assert retrying is not None and lease.released and await slots.held() == 0
        started = await store.mark_running(second.id, slot=waiting)
        assert started is not None and waiting.held
        assert sync.zscore(FAIR_DISPATCHED_KEY, second.id) is None

    run_with_parts(redis_url, scenario)


def test_a_final_transition_also_indexes_the_cache_and_ends_the_single_flight(
    redis_url: str,
) -> None:
    leader, follower = make_job(), make_job()
    owner, digest = owner_of(leader.api_key_id), options_digest(leader.options)

    async def scenario(store: StatusStore, cache: ResultCache, slots: FleetSemaphore) -> None:
        for job in (leader, follower):
            await store.create(job)
        assert await cache.lead_or_join(owner, digest, leader.id) is None
        assert await cache.lead_or_join(owner, digest, follower.id) == leader.id
        lease = slots.lease(lease_seconds=30)
        running = await store.mark_running(leader.id, slot=lease)
        assert running is not None
        now = utcnow()
        ending = Completion(store, cache, BatchStore(store.redis, ttl_seconds=600)).ending(
            running, result=RESULT, finished_at=now)
        with Monitor(redis_url) as monitor:
            ended = await store.finish(leader.id, RESULT, now=now, slot=lease, ending=ending)
        assert monitor.sent == ["EVALSHA"]  # slot, cache index, single-flight: one script
        assert ended.job is not None and ended.job.status is JobStatus.succeeded
        assert ended.followers == [follower.id]
        assert await slots.held() == 0
        cached = await cache.lookup(owner, digest, max_age=60)
        assert cached is not None and cached.id == leader.id
        # The single-flight ended: the next identical request leads a capture of its own.
        assert await cache.lead_or_join(owner, digest, follower.id) is None

    run_with_parts(redis_url, scenario)


def test_a_refused_final_transition_gives_the_slot_back_and_ends_nothing(redis_url: str) -> None:
    job = make_job()
    owner, digest = owner_of(job.api_key_id), options_digest(job.options)

    async def scenario(store: StatusStore, cache: ResultCache, slots: FleetSemaphore) -> None:
        await store.create(job)
        assert await cache.lead_or_join(owner, digest, job.id) is None
        lease = slots.lease(lease_seconds=30)
        running = await store.mark_running(job.id, slot=lease)
        assert running is not None
        await store.mark_failed(job.id, JobError(code="lost", message="the sweeper gave up"))
        ending = cache.ending(running, result=RESULT, finished_at=1.0)
        ended = await store.finish(job.id, RESULT, slot=lease, ending=ending)
        assert (ended.job, ended.followers) == (None, [])
        assert await slots.held() == 0  # given back whatever happened
        assert await cache.lookup(owner, digest, max_age=10**10) is None  # not indexed
        # Whoever finished the job ends its single-flight; this transition left it alone.
        assert await store.redis.get(ending.inflight_key) == job.id.encode()

    run_with_parts(redis_url, scenario)

"""The fair queue's Lua scripts against a real redis-server: round-robin between owners, the
bound on released-but-not-started captures, leases of unpublished claims, single-flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import redis as sync_redis

from shared.connections import create_redis
from shared.constants import (
    FAIR_DISPATCHED_KEY,
    FAIR_OWNERS_KEY,
    FAIR_RELEASING_KEY,
    FAIR_WAKE_KEY,
    PENDING_JOBS_KEY,
    fair_jobs_key,
)
from shared.fair_queue import FairQueue
from shared.jobs import CaptureOptions, Job, JobStatus, StoredResult, new_job_id, utcnow
from shared.result_cache import options_digest
from shared.status_store import StatusStore

T = TypeVar("T")
TTL = 3600
QUEUED_DEADLINE = 100


def make_job(owner: str | None, **overrides: Any) -> Job:
    values: dict[str, Any] = {
        "id": new_job_id(), "status": JobStatus.queued, "created_at": utcnow(),
        "options": CaptureOptions(url="https://example.com"), "api_key_id": owner,
    }
    values.update(overrides)
    return Job(**values)


Scenario = Callable[[FairQueue], Coroutine[Any, Any, T]]


@pytest.fixture
def run(redis_url: str) -> Callable[..., Any]:
    """Runs ``scenario(fair)`` on a fair queue over the test Redis."""

    def run_it(scenario: Scenario[T], *, ahead: int = 100, lease_seconds: float = 30.0) -> T:
        async def main() -> T:
            client = create_redis(redis_url)
            store = StatusStore(client, ttl_seconds=TTL, queued_deadline=QUEUED_DEADLINE)
            try:
                return await scenario(FairQueue(client, store, ahead=ahead, stale_after=600,
                                                lease_seconds=lease_seconds))
            finally:
                await client.aclose()

        return asyncio.run(main())

    return run_it


@pytest.fixture
def plain(redis_url: str) -> sync_redis.Redis:
    return sync_redis.Redis.from_url(redis_url)


def test_claims_take_one_job_per_owner_in_turn(run: Callable[..., Any],
                                                plain: sync_redis.Redis) -> None:
    a = [make_job("key-a") for _ in range(5)]
    b = [make_job("key-b") for _ in range(2)]
    c = [make_job(None)]

    async def scenario(fair: FairQueue) -> list[str]:
        for job in (*a, *b, *c):  # a floods first
            assert await fair.submit(job) is None
        assert await fair.waiting() == 8
        claimed = [release.job_id for release in await fair.claim()]
        assert await fair.waiting() == 0
        return claimed

    order = run(scenario)
    assert order == [a[0].id, b[0].id, c[0].id, a[1].id, b[1].id, a[2].id, a[3].id, a[4].id]
    # Nothing left behind: no owner in the ring, no list.
    assert plain.llen(FAIR_OWNERS_KEY) == 0
    assert not plain.exists(fair_jobs_key("key-a"), fair_jobs_key("key-b"), fair_jobs_key(None))


def test_a_late_owner_is_served_before_the_flood_goes_on(run: Callable[..., Any]) -> None:
    flood = [make_job("key-a") for _ in range(30)]
    late = [make_job("key-b") for _ in range(2)]

    async def scenario(fair: FairQueue) -> list[str]:
        for job in flood:
            await fair.submit(job)
        first = [r.job_id for r in await fair.claim()]  # 2 of the flood released
        assert first == [flood[0].id, flood[1].id]
        for job in late:
            await fair.submit(job)
        released = list(first)
        for job_id in first:  # each start makes room for one more
            await fair.store.mark_running(job_id)
            released += [r.job_id for r in await fair.claim()]
        for job_id in released[2:]:
            await fair.store.mark_running(job_id)
            released += [r.job_id for r in await fair.claim()]
        return released

    released = run(scenario, ahead=2)
    assert released[:6] == [flood[0].id, flood[1].id, flood[2].id, late[0].id, flood[3].id,
                            late[1].id]


def test_only_ahead_captures_are_released_until_one_starts(run: Callable[..., Any],
                                                           plain: sync_redis.Redis) -> None:
    jobs = [make_job("key-a") for _ in range(5)]

    async def scenario(fair: FairQueue) -> None:
        for job in jobs:
            await fair.submit(job)
        assert [r.job_id for r in await fair.claim()] == [jobs[0].id, jobs[1].id]
        assert await fair.claim() == []  # two are ahead already
        assert await fair.ahead_now() == 2
        plain.delete(FAIR_WAKE_KEY)
        started = await fair.store.mark_running(jobs[0].id)
        assert started is not None and started.status is JobStatus.running
        # The start left the "ahead" set and woke a dispatcher, in the same script.
        assert await fair.ahead_now() == 1
        assert plain.llen(FAIR_WAKE_KEY) == 1
        assert [r.job_id for r in await fair.claim()] == [jobs[2].id]
        assert await fair.waiting() == 2

    run(scenario, ahead=2)


def test_a_waiting_job_has_no_queued_deadline_until_released(run: Callable[..., Any],
                                                              plain: sync_redis.Redis) -> None:
    job = make_job("key-a")

    async def scenario(fair: FairQueue) -> None:
        await fair.submit(job)
        now = float(plain.time()[0])
        # Waiting in Redis it cannot lose a queue message: the sweeper leaves it alone.
        assert plain.zscore(PENDING_JOBS_KEY, job.id) == pytest.approx(now + TTL, abs=5)
        await fair.claim()
        assert plain.zscore(PENDING_JOBS_KEY, job.id) == pytest.approx(now + QUEUED_DEADLINE,
                                                                      abs=5)

    run(scenario)


def test_an_unpublished_claim_is_handed_out_again_after_its_lease(
    run: Callable[..., Any], plain: sync_redis.Redis
) -> None:
    lost, started, confirmed = (make_job("key-a") for _ in range(3))

    async def scenario(fair: FairQueue) -> None:
        for job in (lost, started, confirmed):
            await fair.submit(job)
        # A dispatcher claims all three, confirms one, then dies before publishing the others;
        # one of those was published after all (its task started). Lease 0: already over.
        assert len(await fair.claim()) == 3
        await fair.published([confirmed.id])
        await fair.store.mark_running(started.id)
        again = await fair.claim()
        assert [r.job_id for r in again] == [lost.id]
        assert plain.zscore(FAIR_RELEASING_KEY, lost.id) is not None
        await fair.published([lost.id])
        assert await fair.claim() == []
        assert plain.zcard(FAIR_RELEASING_KEY) == 0

    run(scenario, lease_seconds=0)


def test_a_claim_within_its_lease_is_not_handed_out_twice(run: Callable[..., Any]) -> None:
    job = make_job("key-a")

    async def scenario(fair: FairQueue) -> None:
        await fair.submit(job)
        assert [r.job_id for r in await fair.claim()] == [job.id]
        assert await fair.claim() == []

    run(scenario)


def test_finished_or_vanished_jobs_are_skipped(run: Callable[..., Any],
                                               plain: sync_redis.Redis) -> None:
    gone, done, live = (make_job("key-a") for _ in range(3))
    result = StoredResult(key="results/x.png", content_type="image/png", bytes=3, width=1,
                          height=1, sha256="ab")

    async def scenario(fair: FairQueue) -> None:
        for job in (gone, done, live):
            await fair.submit(job)
        await fair.store.delete(gone.id)
        await fair.store.mark_succeeded(done.id, result)
        assert [r.job_id for r in await fair.claim()] == [live.id]
        assert await fair.waiting() == 0
        assert await fair.ahead_now() == 1

    run(scenario, ahead=1)


def test_claims_carry_the_request_id_and_trace_context(run: Callable[..., Any]) -> None:
    traced = make_job("key-a", request_id="req-7",
                      traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    bare = make_job("key-b")

    async def scenario(fair: FairQueue) -> None:
        await fair.submit(traced)
        await fair.submit(bare)
        first, second = await fair.claim()
        assert (first.job_id, first.request_id, first.traceparent) == (
            traced.id, "req-7", traced.traceparent)
        assert (second.job_id, second.request_id, second.traceparent) == (bare.id, None, None)

    run(scenario)


def test_an_identical_submit_joins_the_capture_in_flight(run: Callable[..., Any]) -> None:
    leader, follower = make_job("key-a"), make_job("key-a")
    digest = options_digest(leader.options)

    async def scenario(fair: FairQueue) -> None:
        assert await fair.submit(leader, digest=digest) is None
        assert await fair.submit(follower, digest=digest) == leader.id
        assert await fair.waiting() == 1  # only the leader waits for a capture
        joined = await fair.store.get(follower.id)
        assert joined.capture_of == leader.id and joined.cached
        # Another owner never shares it.
        other = make_job("key-b")
        assert await fair.submit(other, digest=digest) is None

    run(scenario)


def test_stale_released_entries_stop_counting(run: Callable[..., Any],
                                              plain: sync_redis.Redis) -> None:
    jobs = [make_job("key-a") for _ in range(2)]

    async def scenario(fair: FairQueue) -> None:
        for job in jobs:
            await fair.submit(job)
        assert len(await fair.claim()) == 1
        # Its message was lost long ago (older than the visibility timeout).
        plain.zadd(FAIR_DISPATCHED_KEY, {jobs[0].id: 1.0})
        await fair.published([jobs[0].id])
        assert [r.job_id for r in await fair.claim()] == [jobs[1].id]

    run(scenario, ahead=1)

"""The parts that keep jobs from being lost, against a real redis-server: the pending index,
the sweeper and its leader lock, the fleet semaphore, the delivery invariant, the shutdown
watcher and Chromium recycling."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import redis as sync_redis

from shared.connections import create_redis
from shared.constants import PENDING_JOBS_KEY, SWEEPER_LOCK_KEY
from shared.errors import ConfigurationError
from shared.jobs import CaptureOptions, Job, JobError, JobStatus, StoredResult, new_job_id, utcnow
from shared.queue import (
    RECOMMENDED_VISIBILITY_TIMEOUT_SECONDS,
    TASK_TIME_LIMIT_SECONDS,
    check_delivery_invariant,
    make_celery,
    max_countdown,
    task_countdown,
)
from shared.semaphore import FleetSemaphore
from shared.settings import Settings
from shared.status_store import StatusStore
from worker.pipeline import MAX_BACKOFF_SECONDS
from worker.shutdown import bound_warm_shutdown
from worker.sweeper import Sweeper

T = TypeVar("T")
RESULT = StoredResult(key="results/x.png", content_type="image/png", bytes=3, sha256="ab")
ERROR = JobError(code="timeout", message="too slow")


def make_job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "id": new_job_id(), "status": JobStatus.queued, "created_at": utcnow(),
        "options": CaptureOptions(url="https://example.com"), "request_id": "req-1",
    }
    values.update(overrides)
    return Job(**values)


@pytest.fixture
def run(redis_url: str) -> Callable[..., Any]:
    """Runs ``fn(redis)`` on a fresh event loop with an asyncio client of the test Redis."""

    def runner(fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        async def main() -> T:
            client = create_redis(redis_url)
            try:
                return await fn(client)
            finally:
                await client.aclose()

        return asyncio.run(main())

    return runner


def deadline_of(redis_url: str, job_id: str) -> float | None:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        score = client.zscore(PENDING_JOBS_KEY, job_id)
        return None if score is None else float(score) - time.time()
    finally:
        client.close()


# --- The pending index --------------------------------------------------------------------


def test_the_index_follows_every_transition(run: Callable[..., Any], redis_url: str) -> None:
    job, other, gone = make_job(), make_job(), make_job()

    async def scenario(redis: Any) -> None:
        store = StatusStore(redis, ttl_seconds=3600, queued_deadline=100)
        for j in (job, other, gone):
            await store.create(j)
        assert deadline_of(redis_url, job.id) == pytest.approx(100, abs=2)
        await store.mark_running(job.id, deadline_in=30)
        assert deadline_of(redis_url, job.id) == pytest.approx(30, abs=2)
        await store.mark_retrying(job.id, ERROR, retry_in=5)
        assert deadline_of(redis_url, job.id) == pytest.approx(105, abs=2)
        await store.mark_running(job.id)
        await store.mark_succeeded(job.id, RESULT)
        assert deadline_of(redis_url, job.id) is None
        await store.mark_failed(other.id, ERROR)
        assert deadline_of(redis_url, other.id) is None
        await store.delete(gone.id)
        assert deadline_of(redis_url, gone.id) is None
        # A refused transition leaves the index alone: a finished job never re-enters it.
        assert await store.mark_running(job.id) is None
        assert await store.pending_count() == 0

    run(scenario)


# --- The sweeper ---------------------------------------------------------------------------


class Enqueued:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, job_id: str, request_id: str | None) -> None:
        self.calls.append((job_id, request_id))


class Finished:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    async def job_finished(self, job: Job) -> None:
        self.jobs.append(job)


def make_sweeper(redis: Any, store: StatusStore, enqueue: Enqueued, **kwargs: Any) -> Sweeper:
    values: dict[str, Any] = {"interval": 0.2, "max_recoveries": 2, "max_attempts": 3}
    values.update(kwargs)
    return Sweeper(redis=redis, store=store, enqueue=enqueue, **values)


def test_sweeper_requeues_stuck_jobs_then_fails_them_as_lost(run: Callable[..., Any]) -> None:
    queued, running, fresh = make_job(), make_job(), make_job()
    enqueue, finished = Enqueued(), Finished()

    async def scenario(redis: Any) -> None:
        store = StatusStore(redis, ttl_seconds=3600, queued_deadline=0)
        patient = StatusStore(redis, ttl_seconds=3600, queued_deadline=3600)
        await store.create(queued)
        await store.create(running)
        await patient.create(fresh)
        await store.mark_running(running.id, deadline_in=0)
        sweeper = make_sweeper(redis, store, enqueue, listeners=[finished])

        first = await sweeper.sweep()
        assert first.leader
        assert sorted(first.requeued) == sorted([queued.id, running.id])
        assert sorted(enqueue.calls) == sorted([(queued.id, "req-1"), (running.id, "req-1")])
        assert (await store.get(running.id)).status is JobStatus.queued
        assert (await store.get(fresh.id)).status is JobStatus.queued  # not due: untouched

        second = await sweeper.sweep()
        assert sorted(second.requeued) == sorted([queued.id, running.id])
        third = await sweeper.sweep()
        assert sorted(third.lost) == sorted([queued.id, running.id])
        for job_id in (queued.id, running.id):
            lost = await store.get(job_id)
            assert lost.status is JobStatus.failed
            assert lost.error is not None and lost.error.code == "lost"
            assert lost.finished_at is not None
        assert sorted(j.id for j in finished.jobs) == sorted([queued.id, running.id])
        assert (await sweeper.sweep()).lost == []  # failed once, never again
        assert await store.pending_count() == 1  # only the fresh job

    run(scenario)


def test_sweeper_fails_a_job_whose_last_attempt_died(run: Callable[..., Any]) -> None:
    job = make_job()
    enqueue = Enqueued()

    async def scenario(redis: Any) -> None:
        store = StatusStore(redis, ttl_seconds=3600, queued_deadline=0)
        await store.create(job)
        for _ in range(3):
            await store.mark_running(job.id, deadline_in=0)
        report = await make_sweeper(redis, store, enqueue).sweep()
        assert report.lost == [job.id] and enqueue.calls == []

    run(scenario)


def test_sweeper_leaves_jobs_that_moved_on_and_enqueues_parked_retries(
    run: Callable[..., Any],
) -> None:
    parked, done = make_job(), make_job()
    enqueue = Enqueued()

    async def scenario(redis: Any) -> None:
        store = StatusStore(redis, ttl_seconds=3600, queued_deadline=3600)
        await store.create(parked)
        await store.mark_running(parked.id)
        await store.mark_retrying(parked.id, ERROR, retry_in=0.3, park=True)
        await store.create(done)
        await store.mark_succeeded(done.id, RESULT)
        sweeper = make_sweeper(redis, store, enqueue)
        assert (await sweeper.sweep()).retried == []  # not due yet
        await asyncio.sleep(0.4)
        report = await sweeper.sweep()
        assert report.retried == [parked.id] and report.requeued == []
        assert enqueue.calls == [(parked.id, "req-1")]
        assert (await store.get(parked.id)).status is JobStatus.queued
        assert (await sweeper.sweep()).retried == []  # enqueued once
        # A parked retry does not count as a recovery.
        assert await redis.hget(f"shotline:job:{parked.id}", "recoveries") is None

    run(scenario)


def test_only_one_sweeper_leads_and_a_dead_leader_is_replaced(run: Callable[..., Any]) -> None:
    async def scenario(redis: Any) -> None:
        store = StatusStore(redis, ttl_seconds=3600)
        first = make_sweeper(redis, store, Enqueued(), interval=0.2)
        second = make_sweeper(redis, store, Enqueued(), interval=0.2)
        assert first.lock_ttl_ms == 3000
        assert await first.lead()
        assert not await second.lead()
        assert (await second.sweep()).leader is False
        assert await first.lead()  # renewal
        await first.resign()
        assert await second.lead()
        # The leader dies without resigning: its lock expires and the other one takes over.
        await redis.pexpire(SWEEPER_LOCK_KEY, 100)
        await asyncio.sleep(0.2)
        assert await first.lead()

    run(scenario)


def test_sweeper_run_loop_survives_errors_and_resigns(run: Callable[..., Any]) -> None:
    async def scenario(redis: Any) -> None:
        store = StatusStore(redis, ttl_seconds=3600, queued_deadline=0)
        job = make_job()
        await store.create(job)
        enqueue = Enqueued()
        sweeper = make_sweeper(redis, store, enqueue, interval=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(sweeper.run(stop))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert enqueue.calls and enqueue.calls[0] == (job.id, "req-1")
        assert await redis.get(SWEEPER_LOCK_KEY) is None

    run(scenario)


# --- The fleet semaphore -------------------------------------------------------------------


def test_semaphore_never_lets_more_than_the_limit_in(run: Callable[..., Any]) -> None:
    async def scenario(redis: Any) -> None:
        semaphore = FleetSemaphore(redis, "test", limit=2)
        inside = peak = 0

        async def worker() -> None:
            nonlocal inside, peak
            for _ in range(5):
                lease = await semaphore.acquire(lease_seconds=10, wait_seconds=10)
                assert lease is not None
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0.01)
                inside -= 1
                await lease.release()

        await asyncio.gather(*(worker() for _ in range(6)))
        assert peak == 2
        assert await semaphore.held() == 0

    run(scenario)


def test_a_crashed_holders_slot_comes_back_after_its_lease(run: Callable[..., Any]) -> None:
    async def scenario(redis: Any) -> None:
        semaphore = FleetSemaphore(redis, "test", limit=1)
        crashed = await semaphore.try_acquire(lease_seconds=0.5)  # never released
        assert crashed is not None
        assert await semaphore.try_acquire(lease_seconds=5) is None
        assert await semaphore.acquire(lease_seconds=5, wait_seconds=0.1) is None
        started = time.monotonic()
        lease = await semaphore.acquire(lease_seconds=5, wait_seconds=3)
        assert lease is not None
        assert 0.2 < time.monotonic() - started < 1.5
        await crashed.release()  # late release of an expired lease frees nothing else
        assert await semaphore.held() == 1
        await lease.release()
        await lease.release()  # idempotent
        assert await semaphore.held() == 0

    run(scenario)


# --- Delivery invariant and Celery configuration ------------------------------------------


def test_celery_is_configured_for_at_least_once_delivery(settings: Settings) -> None:
    app = make_celery(settings)
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    # Redis keeps a lost connection's running tasks unacknowledged: they run on
    # (worker.consumer); RabbitMQ redelivers them at once: they are cancelled.
    assert not conf.worker_cancel_long_running_tasks_on_connection_loss
    amqp = make_celery(settings.model_copy(update={"broker_url": "amqp://guest@127.0.0.1//"}))
    assert amqp.conf.worker_cancel_long_running_tasks_on_connection_loss
    amqp.close()
    assert conf.broker_connection_max_retries is None
    options = conf.broker_transport_options
    assert options["visibility_timeout"] == settings.visibility_timeout_seconds
    assert options["unacked_restore_throttle"] == 1
    assert conf.task_time_limit == TASK_TIME_LIMIT_SECONDS
    app.close()


def test_the_default_visibility_timeout_outlasts_every_countdown_and_run() -> None:
    defaults = Settings(_env_file=None)
    assert defaults.visibility_timeout_seconds >= RECOMMENDED_VISIBILITY_TIMEOUT_SECONDS
    assert max_countdown(defaults) >= MAX_BACKOFF_SECONDS
    check_delivery_invariant(defaults)
    too_short = Settings.model_construct(visibility_timeout_seconds=2)
    with pytest.raises(ConfigurationError, match="too short"):
        check_delivery_invariant(too_short)


def test_retry_countdowns_are_whole_seconds_never_earlier_than_the_delay() -> None:
    # RabbitMQ's native delayed delivery takes whole seconds; Celery refuses a countdown under
    # one second (the retry was rejected and its message dropped) and truncates the rest.
    assert [task_countdown(d) for d in (0.0, 0.001, 0.5, 1.0, 1.2, 59.9)] == [0, 1, 1, 1, 2, 60]


# --- Shutdown watcher ----------------------------------------------------------------------


def test_shutdown_watcher_escalates_only_when_captures_outlast_the_timeout() -> None:
    escalated = threading.Event()
    running = [1]
    watcher = bound_warm_shutdown(0.3, active=lambda: running[0], escalate=escalated.set)
    watcher.join(3)
    assert escalated.is_set()

    escalated.clear()
    watcher = bound_warm_shutdown(5, active=lambda: running[0], escalate=escalated.set)
    time.sleep(0.3)
    running[0] = 0
    watcher.join(3)
    assert not watcher.is_alive() and not escalated.is_set()

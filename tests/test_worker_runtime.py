"""The worker's runtime without Celery: captures handed to its event loop from many threads
at once (as the threads pool does), and the Redis round trips one capture costs. Real Redis
and the SnapAPI stand-in; concurrency and commands are counted, never timed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.connections import create_redis
from shared.jobs import CaptureOptions, Job, JobStatus, new_job_id, utcnow
from shared.settings import Settings
from shared.status_store import StatusStore
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.procs import wait_for
from tests.redis_monitor import Monitor
from worker.pipeline import run_capture_job
from worker.runtime import WorkerRuntime

KEY = "sk_test_runtime"


@pytest.fixture
def snapapi() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key=KEY) as snap:
        yield snap


@pytest.fixture
def runtime(make_settings: Callable[..., Settings], snapapi: SnapApiStandIn
            ) -> Iterator[WorkerRuntime]:
    settings = make_settings(engine="snapapi", snapapi_key=KEY, snapapi_base_url=snapapi.base_url,
                             snapapi_max_concurrency=50, capture_max_attempts=1)
    built = WorkerRuntime(settings)
    try:
        yield built
    finally:
        built.close()


def create_jobs(settings: Settings, count: int) -> list[str]:
    async def create() -> list[str]:
        client = create_redis(settings.redis_url)
        store = StatusStore(client, ttl_seconds=600)
        ids = [new_job_id() for _ in range(count)]
        try:
            for job_id in ids:
                await store.create(Job(id=job_id, status=JobStatus.queued, created_at=utcnow(),
                                       options=CaptureOptions(url="http://127.0.0.1:9/page",
                                                              width=200, height=150)))
        finally:
            await client.aclose()
        return ids

    return asyncio.run(create())


def test_captures_from_many_threads_wait_on_the_one_loop_together(
    runtime: WorkerRuntime, snapapi: SnapApiStandIn
) -> None:
    ids = create_jobs(runtime.settings, 6)
    snapapi.hang = True
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(runtime.run, run_capture_job(job_id, runtime.deps))
                   for job_id in ids]
        assert wait_for(lambda: snapapi.concurrency == 6, timeout=30), snapapi.concurrency
        snapapi.hang = False
        snapapi.release()
        outcomes = [future.result(30) for future in futures]
    assert [outcome.status for outcome in outcomes] == [JobStatus.succeeded] * 6
    assert snapapi.peak_concurrency == 6


def test_a_capture_costs_two_redis_round_trips(runtime: WorkerRuntime) -> None:
    """Two scripts: slot taken with the running transition, and the succeeded transition
    that also gives the slot back, indexes the result cache and ends the single-flight."""
    warm, *ids = create_jobs(runtime.settings, 4)
    assert runtime.run(run_capture_job(warm, runtime.deps)).status is JobStatus.succeeded
    with Monitor(runtime.settings.redis_url) as monitor:
        for job_id in ids:
            outcome = runtime.run(run_capture_job(job_id, runtime.deps))
            assert outcome.status is JobStatus.succeeded
    sent = Counter(monitor.sent)
    assert sent == {"EVALSHA": 2 * len(ids)}, sent

"""The worker's runtime without Celery: captures handed to its event loop from many threads
at once (as the threads pool does), and the Redis round trips one capture costs. Real Redis
and the SnapAPI stand-in; concurrency and commands are counted, never timed."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from shared.connections import create_redis
from shared.jobs import CaptureOptions, Job, JobStatus, new_job_id, utcnow
from shared.settings import Settings
from shared.status_store import StatusStore
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.procs import wait_for
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


class Monitor:
    """Every command clients send to Redis (MONITOR), commands run by scripts left out."""

    SENTINEL = "shotline-monitor-stop"

    def __init__(self, url: str) -> None:
        self.url = url
        self.commands: list[str] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        client = redis.Redis.from_url(self.url)
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            self._ready.set()
            for entry in monitor.listen():
                command = str(entry["command"])
                if self.SENTINEL in command:
                    break
                if entry.get("client_type") != "lua":
                    self.commands.append(command.split(" ", 1)[0].upper())
        client.close()

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        client = redis.Redis.from_url(self.url)
        client.echo(self.SENTINEL)
        client.close()
        self._thread.join(10)


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


def test_a_capture_costs_five_redis_round_trips(runtime: WorkerRuntime) -> None:
    """Slot, running, slot back, succeeded, result cache and single-flight: five commands
    (scripts count as one), whatever happens inside them."""
    warm, *ids = create_jobs(runtime.settings, 4)
    assert runtime.run(run_capture_job(warm, runtime.deps)).status is JobStatus.succeeded
    with Monitor(runtime.settings.redis_url) as monitor:
        for job_id in ids:
            outcome = runtime.run(run_capture_job(job_id, runtime.deps))
            assert outcome.status is JobStatus.succeeded
    sent = Counter(c for c in monitor.commands if c not in ("HELLO", "CLIENT", "SELECT"))
    assert sent == {"EVALSHA": 4 * len(ids), "ZREM": len(ids)}, sent

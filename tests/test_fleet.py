"""The fleet-wide SnapAPI semaphore across worker processes, and a load test of 5,000 jobs
through the SnapAPI stand-in used as an instant engine."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import httpx
import pytest
import redis as sync_redis

from shared.constants import PENDING_JOBS_KEY, SNAPAPI_SEMAPHORE, job_key, semaphore_key
from tests.conftest import ProcessFactory
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.polling import submit
from tests.procs import wait_for
from tests.test_chaos_workers import CHAOS_ENV, wait_all_terminal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(700)]

KEY = "sk_test_fleet"


@pytest.fixture
def snapapi() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key=KEY) as snap:
        yield snap


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def snap_env(snapapi: SnapApiStandIn, limit: int) -> dict[str, str]:
    return {**CHAOS_ENV, "SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": KEY,
            "SHOTLINE_SNAPAPI_BASE_URL": snapapi.base_url,
            "SHOTLINE_SNAPAPI_MAX_CONCURRENCY": str(limit)}


def test_three_workers_never_exceed_the_fleet_limit(
    processes: ProcessFactory, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    env = snap_env(snapapi, 2)
    snapapi.delay = 0.4
    for _ in range(3):
        processes.worker(concurrency=2, **env)
    base = processes.api(**env)
    urls = [submit(client, base, url=f"http://127.0.0.1:9/page?n={n}", width=200, height=150)[
        "status_url"] for n in range(14)]
    done = wait_all_terminal(client, urls, timeout=180)
    assert [r["status"] for r in done] == ["succeeded"] * len(urls)
    assert all(r["attempts"] == 1 for r in done)  # waiting for a slot is not an attempt
    assert snapapi.peak_concurrency == 2
    assert len(snapapi.bodies) == len(urls)


def test_a_killed_holders_slot_comes_back_after_its_lease(
    processes: ProcessFactory, client: httpx.Client, snapapi: SnapApiStandIn, redis_url: str
) -> None:
    env = snap_env(snapapi, 1)
    store = sync_redis.Redis.from_url(redis_url)
    snapapi.hang = True
    holder, _log = processes.worker(concurrency=1, **env)
    base = processes.api(**env)
    first = submit(client, base, url="http://127.0.0.1:9/page?n=1", timeout_ms=2000)
    assert wait_for(lambda: snapapi.concurrency == 1, timeout=60)
    leases = cast(list[tuple[bytes, float]],
                  store.zrange(semaphore_key(SNAPAPI_SEMAPHORE), 0, -1, withscores=True))
    [(_token, expiry)] = leases
    os.killpg(holder.pid, signal.SIGKILL)  # the worker and its pool die holding the slot
    holder.wait(10)
    snapapi.hang = False
    snapapi.release()

    processes.worker(concurrency=1, **env)
    second = submit(client, base, url="http://127.0.0.1:9/page?n=2", timeout_ms=2000)
    while time.time() < expiry - 1:
        assert client.get(second["status_url"]).json()["status"] == "queued"
        time.sleep(0.2)
    done = wait_all_terminal(client, [first["status_url"], second["status_url"]], timeout=120)
    assert [r["status"] for r in done] == ["succeeded", "succeeded"], done
    started = datetime.fromisoformat(done[1]["started_at"]).timestamp()
    assert started >= expiry - 0.5  # it ran once the dead holder's lease was over
    assert done[1]["attempts"] == 1
    store.close()


def test_load_5000_jobs_all_end_none_lost_none_duplicated(
    processes: ProcessFactory, snapapi: SnapApiStandIn, redis_url: str
) -> None:
    count = 5000
    env = {**snap_env(snapapi, 8), "SHOTLINE_VISIBILITY_TIMEOUT_SECONDS": "600"}
    processes.worker(concurrency=4, **env)
    base = processes.api(**env)
    started = time.monotonic()

    def submit_range(numbers: range) -> list[str]:
        with httpx.Client(timeout=60) as client:
            return [submit(client, base, url=f"http://127.0.0.1:9/load?n={n}", width=100,
                           height=100)["id"] for n in numbers]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = [i for part in pool.map(submit_range, [range(k, count, 8) for k in range(8)])
               for i in part]
    submitted_in = time.monotonic() - started
    store = sync_redis.Redis.from_url(redis_url)
    assert wait_for(lambda: store.zcard(PENDING_JOBS_KEY) == 0, timeout=600, interval=1)
    finished_in = time.monotonic() - started

    assert len(set(ids)) == count
    pipe = store.pipeline()
    for job_id in ids:
        pipe.hmget(job_key(job_id), "status", "attempts")
    states: list[Any] = pipe.execute()
    assert [s for s, _a in states].count(b'"succeeded"') == count
    assert all(int(a) == 1 for _s, a in states)  # every job captured exactly once
    urls = [body["url"] for body in snapapi.bodies]
    assert len(urls) == count and len(set(urls)) == count  # none duplicated upstream
    store.close()
    print(f"\n5000 jobs: submitted in {submitted_in:.1f}s, all finished in {finished_in:.1f}s")

"""Pipeline overhead: Shotline end to end with an instant engine versus a bare Celery no-op.

The engine is the SnapAPI stand-in (``python -m tests.fakes.snapapi_server``, a local
server speaking SnapAPI's API that answers at once), so what is measured is Shotline's
own cost per job: the API (validation, URL policy, status record, enqueue), the broker,
the worker (status transitions, the engine call, the result's digest and storage; a
threads pool of :data:`WORKER_THREADS`, the SnapAPI engine's pool) and the status record.
The reference is the same Redis moving a Celery task that does nothing, sent by one
producer and run by a default prefork worker.

Submit latency is measured open loop at a fixed request rate, from each request's
scheduled time (so a slow answer cannot hide the queueing behind it), twice: with the
workers paused (SIGSTOP: the API's own latency; the jobs wait in Redis and run once the
workers resume) and with the workers running them (the whole stack on the same cores: when
the rate is above what the machine captures end to end, this measures CPU starvation).
Every job of both runs must succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.client import open_loop, submit_all, wait_finished
from bench.noop_app import NOOP_QUEUE, NOOP_TASK
from bench.redis_commands import Monitor
from bench.stack import Stack, stack, tree_cpu_seconds
from shared.queue import make_celery
from shared.settings import Settings
from tests.servers import free_port, python_command, wait_for_port

API_KEY = "sk_test_bench"
#: Capture threads of the worker (the SnapAPI engine's threads pool, as ``shotline worker``
#: runs it). An instant engine needs few: the captures are CPU, not waiting, and each thread
#: more only adds GIL hand-offs (measured: worker CPU per job rose from about 5.6 ms with 8
#: threads to 8.7 ms with 64, the default for an unlimited plan).
WORKER_THREADS = 8
#: A page on a loopback address: the URL policy lets it through (ALLOWED_NETWORKS), and the
#: stand-in never fetches it.
PAGE = "http://127.0.0.2:8080/index.html"
BODY = {"url": PAGE, "width": 1280, "height": 800, "format": "png"}


def start_standin(running: Stack) -> str:
    """The SnapAPI stand-in as a process of its own; returns its base URL."""
    port = free_port()
    process, _log = running.processes._spawn("snapapi", python_command(
        "-m", "tests.fakes.snapapi_server", "--port", str(port), "--api-key", API_KEY,
    ), {})
    wait_for_port(port, process=process)
    return f"http://127.0.0.1:{port}"


def end_to_end(running: Stack, base: str, pids: dict[str, int], jobs: int,
               concurrency: int) -> dict[str, Any]:
    """Submit ``jobs`` captures as fast as possible; jobs/s until the last one finished."""
    client = running.redis()
    cpu_before = {name: tree_cpu_seconds([pid]) for name, pid in pids.items()}
    submitted = asyncio.run(submit_all(base, [BODY] * jobs, concurrency=concurrency))
    submit_done = time.time()
    outcome = wait_finished(client, [item.job_id for item in submitted], timeout=300)
    cpu = {name: round((tree_cpu_seconds([pid]) - cpu_before[name]) * 1000 / jobs, 3)
           for name, pid in pids.items()}
    first = min(item.sent for item in submitted)
    seconds = (outcome.last_finished or time.time()) - first
    return {
        "jobs": jobs,
        "worker_pool": f"threads x{WORKER_THREADS}",
        "submit_concurrency": concurrency,
        "succeeded": outcome.succeeded,
        "lost_or_failed": jobs - outcome.succeeded,
        "seconds": round(seconds, 3),
        "jobs_per_second": round(outcome.succeeded / seconds, 1),
        "submissions_per_second": round(jobs / (submit_done - first), 1),
        "cpu_ms_per_job": cpu,
    }


def redis_commands(running: Stack, base: str, jobs: int, concurrency: int) -> dict[str, Any]:
    """Redis commands per job (``MONITOR``, :mod:`bench.redis_commands`) over ``jobs`` jobs
    end to end; a run of its own, since ``MONITOR`` slows the server down."""
    poller = running.redis()
    with Monitor(running.redis_url, ignore={str(poller.client_info()["addr"])},
                 workdir=running.workdir) as monitor:
        submitted = asyncio.run(submit_all(base, [BODY] * jobs, concurrency=concurrency))
        outcome = wait_finished(poller, [item.job_id for item in submitted], timeout=300)
    return {"jobs": jobs, "succeeded": outcome.succeeded, **monitor.count.per_job(jobs)}


def bare_celery(running: Stack, settings: Settings, jobs: int, concurrency: int,
                counted_jobs: int) -> dict[str, Any]:
    """``jobs`` no-op tasks through the same Redis: sent by one producer, run by a prefork
    worker of ``concurrency`` processes; jobs/s until the queue and the unacked set are empty.
    Then ``counted_jobs`` more under ``MONITOR``: Redis commands per task."""
    worker = running.processes.celery_worker(
        app="bench.noop_app", pool="prefork", concurrency=concurrency, queue=NOOP_QUEUE,
    )
    app = make_celery(settings)
    client: redis.Redis = running.redis()
    cpu_before = tree_cpu_seconds([worker.pid])

    def send_and_drain(count: int) -> float:
        started = time.time()
        with app.producer_or_acquire() as producer:
            for index in range(count):
                app.send_task(NOOP_TASK, args=[str(index)], queue=NOOP_QUEUE, producer=producer)
        deadline = time.monotonic() + 300
        while client.llen(NOOP_QUEUE) or client.hlen("unacked"):
            if time.monotonic() > deadline:
                raise RuntimeError("the no-op tasks did not drain in 300 s")
            time.sleep(0.005)
        return time.time() - started

    try:
        seconds = send_and_drain(jobs)
        cpu_ms = round((tree_cpu_seconds([worker.pid]) - cpu_before) * 1000 / jobs, 3)
        with Monitor(running.redis_url, ignore={str(client.client_info()["addr"])},
                     workdir=running.workdir) as monitor:
            send_and_drain(counted_jobs)
    finally:
        app.close()
    return {
        "jobs": jobs,
        "worker_concurrency": concurrency,
        "seconds": round(seconds, 3),
        "jobs_per_second": round(jobs / seconds, 1),
        "cpu_ms_per_job": {"worker": cpu_ms},
        "redis": {"jobs": counted_jobs, **monitor.count.per_job(counted_jobs)},
    }


def run(workdir: Path, *, jobs: int = 3000, rate: float = 200.0, seconds: float = 15.0,
        submit_concurrency: int = 32, counted_jobs: int = 300) -> dict[str, Any]:
    """The whole overhead benchmark; see the module docstring."""
    cores = os.cpu_count() or 2
    with stack(workdir / "overhead", SHOTLINE_ENGINE="snapapi",
               SHOTLINE_SNAPAPI_KEY=API_KEY, SHOTLINE_SNAPAPI_MAX_CONCURRENCY="10000") as running:
        standin_url = start_standin(running)
        standin = running.processes.processes[-1]
        running.processes.base_env["SHOTLINE_SNAPAPI_BASE_URL"] = standin_url
        worker = running.processes.shotline_worker(pool="threads", concurrency=WORKER_THREADS)
        base, api = running.processes.api_process()
        redis_pid = int(running.redis().info("server")["process_id"])
        pids = {"api": api.pid, "worker": worker.pid, "snapapi_stand_in": standin.pid,
                "redis": redis_pid}
        end_to_end(running, base, pids, min(200, jobs), submit_concurrency)  # warm-up
        shotline = end_to_end(running, base, pids, jobs, submit_concurrency)

        with paused(worker.pid):
            alone = asyncio.run(open_loop(base, BODY, rate=rate, seconds=seconds))
        drained_alone = wait_finished(running.redis(), [s.job_id for s in alone.submitted],
                                      timeout=300)
        latency = asyncio.run(open_loop(base, BODY, rate=rate, seconds=seconds))
        drained = wait_finished(running.redis(), [s.job_id for s in latency.submitted], timeout=300)
        shotline["redis"] = redis_commands(running, base, counted_jobs, submit_concurrency)
        env = running.processes.base_env
        settings = Settings(_env_file=None, redis_url=env["SHOTLINE_REDIS_URL"])
        celery = bare_celery(running, settings, jobs, cores, counted_jobs)
    ratio = shotline["jobs_per_second"] / celery["jobs_per_second"]
    cpu_total = round(sum(ms for name, ms in shotline["cpu_ms_per_job"].items()
                          if name != "snapapi_stand_in"), 3)
    shotline["cpu_ms_per_job_total_api_worker_redis"] = cpu_total
    goals = [
        {"name": "CPU per job (API + worker + Redis) <= 4 ms", "value": cpu_total, "target": 4,
         "met": cpu_total <= 4},
        {"name": "end-to-end jobs/s with the instant engine >= 300, no job lost",
         "value": shotline["jobs_per_second"], "target": 300,
         "met": shotline["jobs_per_second"] >= 300 and shotline["lost_or_failed"] == 0},
        {"name": f"submit p99 <= 25 ms at {rate:g} req/s (workers paused)",
         "value": alone.p99_ms, "target": 25,
         "met": alone.p99_ms <= 25 and drained_alone.succeeded == alone.sent},
        {"name": f"submit p99 <= 25 ms at {rate:g} req/s (workers running)",
         "value": latency.p99_ms, "target": 25,
         "met": latency.p99_ms <= 25 and drained.succeeded == latency.sent},
    ]
    return {
        "benchmark": "overhead",
        "shotline": shotline,
        "bare_celery_noop": celery,
        "ratio_shotline_vs_bare_celery": round(ratio, 3),
        "submit_latency_workers_paused": {
            "rate_per_second": rate, "seconds": seconds, "sent": alone.sent,
            "p50_ms": alone.p50_ms, "p99_ms": alone.p99_ms, "max_ms": alone.max_ms,
            "late_starts_of_the_load_generator": alone.late_starts,
            "jobs_succeeded": drained_alone.succeeded,
        },
        "submit_latency": {
            "rate_per_second": rate, "seconds": seconds, "sent": latency.sent,
            "p50_ms": latency.p50_ms, "p99_ms": latency.p99_ms, "max_ms": latency.max_ms,
            "late_starts_of_the_load_generator": latency.late_starts,
            "jobs_succeeded": drained.succeeded,
        },
        "goals": goals,
    }


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process tree rooted at ``pid`` stopped (SIGSTOP) for the block, then resumed."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for proc in procs:
        proc.suspend()
    try:
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.resume()

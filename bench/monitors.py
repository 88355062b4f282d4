"""Monitor scheduling at scale: 10 000 monitors due within one minute.

The monitors are written straight into a private Redis, their first slots spread evenly
over the minute after the start. Two scheduler processes race for them (each the loop a
capture worker runs in a thread, :func:`worker.monitor_scheduler.monitor_scheduler_thread`,
here alone in a process so its CPU can be read), and a capture worker with an instant
engine (the SnapAPI stand-in, as in :mod:`bench.overhead`) runs what they enqueue.

Measured: the schedulers' CPU time per 10 000 fires (both processes, start to the last
fire), the lateness of each run (its job's ``created_at`` minus its slot): the last one's
and the worst; that every monitor got exactly one run (no slot lost, none fired twice); and
the runs' outcomes once the worker has captured them all (each is a monitor's first run: it
becomes the baseline, nothing to compare yet).

    python -m bench.monitors scheduler   # one scheduler process (the harness starts two)
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.overhead import API_KEY, start_standin
from bench.stack import stack
from shared.connections import create_redis
from shared.constants import JOB_KEY_PREFIX, MONITORS_DUE_KEY, PENDING_JOBS_KEY
from shared.monitors.models import MonitorRequest, build_monitor, new_monitor_id
from shared.monitors.store import MonitorStore, run_data_key, runs_key
from shared.settings import get_settings
from tests.servers import python_command

#: Where the monitors' captures point (the stand-in never fetches it).
PAGE = "http://127.0.0.2:8080/monitored.html"
SPREAD_SECONDS = 60.0
SCHEDULERS = 2
#: Time allowed to write the monitors before their first slot.
CREATE_SECONDS = 90.0
#: Longest wait, after the last fire, for the worker to capture every run.
CAPTURE_WAIT_SECONDS = 120.0


async def create_monitors(redis_url: str, count: int, *, start: float) -> list[str]:
    """``count`` monitors, hourly, their first slots spread over :data:`SPREAD_SECONDS`."""
    client = create_redis(redis_url)
    store = MonitorStore(client)
    request = MonitorRequest.model_validate({"capture": {"url": PAGE},
                                             "schedule": {"interval_seconds": 3600}})
    ids = []
    try:
        for index in range(count):
            slot = start + SPREAD_SECONDS * index / count
            monitor = build_monitor(request, monitor_id=new_monitor_id(), api_key_id=None,
                                    now=datetime.fromtimestamp(slot, UTC))
            await store.create(monitor, first_slot=slot, anchor=slot)
            ids.append(monitor.id)
    finally:
        await client.aclose()
    return ids


def count_runs(redis_url: str, ids: list[str]) -> dict[str, Any]:
    """Runs per monitor, each run's lateness, and their outcomes (read from Redis)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for monitor_id in ids:
            pipe.zcard(runs_key(monitor_id))
            pipe.hvals(run_data_key(monitor_id))
        rows = pipe.execute()
        runs = [json.loads(raw) for values in rows[1::2] for raw in values]
        pipe = client.pipeline(transaction=False)
        for run in runs:
            pipe.hget(f"{JOB_KEY_PREFIX}{run['job_id']}", "created_at")
        created = pipe.execute()
    finally:
        client.close()
    per_monitor = rows[0::2]
    lateness = []
    for run, raw in zip(runs, created, strict=True):
        if raw is None:
            continue  # no job (cannot happen once every slot is confirmed; counted below)
        slot = datetime.fromisoformat(run["scheduled_at"].replace("Z", "+00:00")).timestamp()
        enqueued = datetime.fromisoformat(json.loads(raw)).timestamp()
        lateness.append((slot, enqueued - slot))
    lateness.sort()
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    return {
        "runs": len(runs),
        "monitors_with_exactly_one_run": sum(1 for n in per_monitor if n == 1),
        "monitors_with_more": sum(1 for n in per_monitor if n > 1),
        "monitors_with_none": sum(1 for n in per_monitor if n == 0),
        "last_slot_lateness_ms": round(lateness[-1][1] * 1000, 1) if lateness else None,
        "max_lateness_ms": round(max(d for _, d in lateness) * 1000, 1) if lateness else None,
        "p50_lateness_ms": round(sorted(d for _, d in lateness)[len(lateness) // 2] * 1000, 1)
        if lateness else None,
        "run_statuses": statuses,
        "runs_without_job": sum(1 for raw in created if raw is None),
    }


def run(workdir: Path, *, monitors: int = 10_000, timeout: float = 600.0) -> dict[str, Any]:
    """The whole benchmark; see the module docstring."""
    with stack(workdir / "monitors", SHOTLINE_ENGINE="snapapi", SHOTLINE_SNAPAPI_KEY=API_KEY,
               SHOTLINE_SNAPAPI_MAX_CONCURRENCY="10000", SHOTLINE_MONITOR_SCHEDULER="false",
               SHOTLINE_DISPATCH_AHEAD="64") as running:
        running.processes.base_env["SHOTLINE_SNAPAPI_BASE_URL"] = start_standin(running)
        running.processes.shotline_worker(pool="threads", concurrency=8)
        # The schedulers run (idle) while the monitors are written, so none of the first
        # slots can be late for want of a scheduler; their CPU is counted from here.
        schedulers = [running.processes._spawn("scheduler", python_command(
            "-m", "bench.monitors", "scheduler"), {})[0] for _ in range(SCHEDULERS)]
        procs = [psutil.Process(p.pid) for p in schedulers]
        time.sleep(5)  # imports done, loops running
        cpu_before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        start = time.time() + CREATE_SECONDS
        ids = asyncio.run(create_monitors(running.redis_url, monitors, start=start))
        if time.time() > start:
            raise RuntimeError(f"writing {monitors} monitors took over {CREATE_SECONDS} s:"
                               " their first slots were already due")
        client = running.redis()
        deadline = time.monotonic() + timeout
        # Every slot fired and confirmed: every monitor's next slot is an hour on (a claimed
        # but unconfirmed one sits a lease, 60 s, ahead of its claim).
        while client.zcount(MONITORS_DUE_KEY, "-inf", start + 1800):
            if time.monotonic() > deadline:
                raise RuntimeError("the monitors did not all fire in time")
            time.sleep(0.1)
        fired_at = time.time()
        cpu = sum(p.cpu_times().user + p.cpu_times().system for p in procs) - cpu_before
        # Then every run's job ends (the pending index empties), and the runs are counted.
        # (At most CAPTURE_WAIT_SECONDS: on a busy machine the captures lag far behind the
        # fires, and what is measured here is the scheduling; the outcomes say how far they got.)
        captures_deadline = min(deadline, time.monotonic() + CAPTURE_WAIT_SECONDS)
        while client.zcard(PENDING_JOBS_KEY) and time.monotonic() < captures_deadline:
            time.sleep(1)
        time.sleep(2)  # the last results hooks
        counted = count_runs(running.redis_url, ids)
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
    return {
        "benchmark": "monitors",
        "monitors": monitors,
        "spread_seconds": SPREAD_SECONDS,
        "schedulers": SCHEDULERS,
        "scheduler_cpu_seconds_per_10000_fires": round(cpu * 10_000 / monitors, 3),
        "last_fire_after_last_slot_ms": round((fired_at - (start + SPREAD_SECONDS)) * 1000, 1),
        **counted,
        "goal": {"name": "exactly one run per monitor", "met":
                 counted["monitors_with_exactly_one_run"] == monitors},
    }


def scheduler_main() -> None:
    """One scheduler process: the worker's scheduler thread, alone."""
    from shared.logging import configure_logging
    from worker.monitor_scheduler import monitor_scheduler_thread

    settings = get_settings()
    configure_logging(level="WARNING", fmt=settings.log_format)
    thread = monitor_scheduler_thread(settings)
    thread.start()
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    asyncio.run(wait())
    thread.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["scheduler"]:
        scheduler_main()
    else:
        print(__doc__)

"""Driving Shotline from outside: submitting jobs over HTTP and waiting for their outcome.

Waiting reads the status records straight from Redis (one pipelined round trip for all
jobs), so that polling does not load the API being measured; the records' own
``finished_at`` times say when each job ended.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import redis

from shared.constants import job_key

TERMINAL = ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class Submitted:
    """One accepted submission: the job id and when the request went out and came back."""

    job_id: str
    sent: float
    answered: float


async def _submit_one(client: httpx.AsyncClient, base: str, body: dict[str, Any]) -> Submitted:
    sent = time.time()
    response = await client.post(f"{base}/v1/screenshots", json=body)
    answered = time.time()
    if response.status_code != 202:
        raise RuntimeError(f"submission refused: {response.status_code} {response.text}")
    return Submitted(response.json()["id"], sent, answered)


def _client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # Long enough for a starved API on a loaded machine (the open loop's p99 with the workers
    # running reached 38 s at load 37): a timeout would abort the run, not measure it.
    return httpx.AsyncClient(timeout=120, limits=limits, trust_env=False)


async def submit_all(base: str, bodies: Sequence[dict[str, Any]], *, concurrency: int) -> list[Submitted]:
    """Submit every body as fast as ``concurrency`` connections allow (closed loop)."""
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for item in enumerate(bodies):
        queue.put_nowait(item)
    results: list[Submitted | None] = [None] * len(bodies)
    async with _client(concurrency) as client:

        async def drain() -> None:
            while not queue.empty():
                index, body = queue.get_nowait()
                results[index] = await _submit_one(client, base, body)

        await asyncio.gather(*(drain() for _ in range(concurrency)))
    return [item for item in results if item is not None]


@dataclass(frozen=True, slots=True)
class Latencies:
    """Submit latencies (ms) of an open-loop run, measured from each request's scheduled time."""

    rate: float
    sent: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    late_starts: int
    submitted: list[Submitted]


async def open_loop(
    base: str, body: dict[str, Any], *, rate: float, seconds: float, connections: int = 64
) -> Latencies:
    """Send ``rate`` requests per second for ``seconds``, each at its scheduled time whether
    or not the earlier ones were answered (open loop: a slow server cannot slow the load
    down and hide its own latency). Latency counts from the scheduled time."""
    count = int(rate * seconds)
    latencies: list[float] = []
    submitted: list[Submitted] = []
    late = 0
    # At most ``connections`` requests wait on httpx's pool at once: its assignment of
    # requests to connections scans every waiting request on each change, and with
    # thousands waiting (a starved API on a loaded machine) the load generator spent its
    # CPU there instead of sending. Waiting here still counts in the latency.
    in_flight = asyncio.Semaphore(connections)
    async with _client(connections) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        async def one(index: int) -> None:
            nonlocal late
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            if loop.time() - scheduled > 0.005:
                late += 1  # the load generator itself was late (busy machine)
            async with in_flight:
                item = await _submit_one(client, base, body)
            latencies.append((loop.time() - scheduled) * 1000)
            submitted.append(item)

        await asyncio.gather(*(one(index) for index in range(count)))
    latencies.sort()
    return Latencies(
        rate=rate,
        sent=count,
        p50_ms=round(statistics.median(latencies), 2),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        max_ms=round(latencies[-1], 2),
        late_starts=late,
        submitted=submitted,
    )


def _when(value: bytes | None) -> float | None:
    if value is None:
        return None
    text = json.loads(value)
    return datetime.fromisoformat(text).timestamp() if text else None


@dataclass(frozen=True, slots=True)
class Outcome:
    """Final state of a set of jobs."""

    statuses: dict[str, str]
    last_finished: float | None
    first_started: float | None

    @property
    def succeeded(self) -> int:
        return sum(1 for status in self.statuses.values() if status == "succeeded")

    @property
    def unfinished(self) -> int:
        return sum(1 for status in self.statuses.values() if status not in TERMINAL)


def _status(value: bytes | None) -> str:
    return str(json.loads(value)) if value else "missing"


def wait_finished(client: redis.Redis, job_ids: Sequence[str], *, timeout: float) -> Outcome:
    """Poll the records of ``job_ids`` until all are succeeded or failed, or ``timeout``.

    Only the jobs not yet finished are read again on each pass, so the waiting itself loads
    the Redis being measured as little as it can."""
    deadline = time.monotonic() + timeout
    rows: dict[str, list[bytes | None]] = {}
    waiting = list(job_ids)
    while True:
        pipe = client.pipeline(transaction=False)
        for job_id in waiting:
            pipe.hmget(job_key(job_id), ["status", "started_at", "finished_at"])
        rows.update(zip(waiting, pipe.execute(), strict=True))
        waiting = [job_id for job_id in waiting if _status(rows[job_id][0]) not in TERMINAL]
        if not waiting or time.monotonic() > deadline:
            statuses = {job_id: _status(rows[job_id][0]) for job_id in job_ids}
            finished = [t for row in rows.values() if (t := _when(row[2])) is not None]
            started = [t for row in rows.values() if (t := _when(row[1])) is not None]
            return Outcome(statuses, max(finished, default=None), min(started, default=None))
        time.sleep(0.05)

"""Latency of single captures on an idle, warm worker: submit → succeeded, one at a time.

A worker as users run it (``shotline worker``, default settings) and the API; after a
warm-up, ``captures`` documentation pages are submitted one after another, each after the
previous one succeeded and a short pause (the worker idle again, its warm context refilled).
A capture's latency runs from the moment the request goes out to the moment the client
sees the job ``succeeded`` (polling Redis every 5 ms, what a webhook-less client could do
at best); the engine's own share is the record's ``started_at`` → ``finished_at``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.pages import docs_sites, pick_pages, spread
from bench.stack import stack
from shared.constants import job_key

#: Seconds between one capture's success and the next submission.
PAUSE_S = 0.5


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(workdir: Path, *, captures: int = 40, warmup: int = 5) -> dict[str, Any]:
    """p50/p95 of ``captures`` single captures (after ``warmup`` unmeasured ones)."""
    pages = pick_pages(max(captures + warmup, 10))
    latencies: list[float] = []
    engine_ms: list[float] = []
    failed = 0
    with docs_sites(1) as sites, stack(workdir / "latency", SHOTLINE_ENGINE="chromium") as running:
        urls = spread(pages, sites)
        running.processes.shotline_worker()
        base, _api = running.processes.api_process()
        client = running.redis()

        async def one(http: httpx.AsyncClient, url: str) -> tuple[float, float | None, bool]:
            sent = time.perf_counter()
            response = await http.post(f"{base}/v1/screenshots",
                                       json={"url": url, "width": 1280, "height": 800})
            response.raise_for_status()
            key = job_key(response.json()["id"])
            while True:
                status, started, finished = client.hmget(key, ["status", "started_at",
                                                               "finished_at"])
                state = json.loads(status) if status else None
                if state in ("succeeded", "failed"):
                    took = (time.perf_counter() - sent) * 1000
                    inside = None
                    if started and finished:
                        inside = (datetime.fromisoformat(json.loads(finished))
                                  - datetime.fromisoformat(json.loads(started))).total_seconds()
                    return took, None if inside is None else inside * 1000, state == "succeeded"
                await asyncio.sleep(0.005)

        async def everything() -> None:
            nonlocal failed
            async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
                for index, url in enumerate(urls[: captures + warmup]):
                    took, inside, ok = await one(http, url)
                    if index >= warmup:
                        if ok:
                            latencies.append(took)
                            if inside is not None:
                                engine_ms.append(inside)
                        else:
                            failed += 1
                    await asyncio.sleep(PAUSE_S)

        asyncio.run(everything())
    p50 = statistics.median(latencies) if latencies else float("inf")
    return {
        "benchmark": "latency", "captures": captures, "failed": failed, "pause_s": PAUSE_S,
        "p50_ms": round(p50, 1), "p95_ms": round(_percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "engine_p50_ms": round(statistics.median(engine_ms), 1) if engine_ms else None,
        "goal": {"name": "p50 latency of a docs-page capture on an idle warm worker <= 300 ms",
                 "value": round(p50, 1), "target": 300, "met": p50 <= 300},
    }

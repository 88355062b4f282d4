"""Memory: the API streaming many large results at once, and a worker over many captures.

API: twenty 20 MB results are downloaded at the same time through the API, and its
resident memory is sampled meanwhile (plus the kernel's high-water mark). Until the
synchronous capture endpoint (``POST /v1/screenshots/sync``) streams results, the
downloads go through ``GET /v1/files/...`` signed links of the local storage, which
streams from disk in 64 KiB chunks.

Worker: a chromium worker (as ``shotline worker`` runs it) captures documentation pages
through the whole pipeline; the resident memory of its process tree (Celery processes and
Chromium) is read after every batch. Growth is measured from the end of the warm-up batch
to the end.

Worker on hostile pages: the same worker captures the hostile pages of the tests (pages
that navigate themselves, print, open hundreds of popups, hog memory, never finish
loading...) one after another; the PSS of its tree is read after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.client import submit_all, wait_finished
from bench.pages import docs_sites, pick_pages, spread
from bench.stack import peak_rss_mb, rss_mb, stack, tree_memory, tree_pss_mb
from shared.storage import LOCAL_FILES_DIR, LocalStorage
from tests.servers import stop_process

FILE_MB = 20


def _sample_peak(pid: int, stop: threading.Event, peaks: list[float]) -> None:
    while not stop.is_set():
        peaks.append(rss_mb(pid))
        time.sleep(0.005)


def api_streaming(workdir: Path, *, files: int = 20) -> dict[str, Any]:
    """Peak API RSS while ``files`` results of :data:`FILE_MB` MB stream at once."""
    with stack(workdir / "memory-api") as running:
        base, api = running.processes.api_process()
        env = running.processes.base_env
        storage = LocalStorage(Path(env["SHOTLINE_DATA_DIR"]) / LOCAL_FILES_DIR, base,
                               env["SHOTLINE_SECRET_KEY"].encode())
        digests: dict[str, str] = {}
        for index in range(files):
            data = os.urandom(FILE_MB * 2**20)
            key = f"results/bench-{index:02d}.png"
            asyncio.run(storage.put(key, data, content_type="image/png"))
            digests[storage.signed_url(key, expires_in=600).url] = hashlib.sha256(data).hexdigest()
        with httpx.Client(trust_env=False) as http:
            http.get(f"{base}/healthz").raise_for_status()
        idle = rss_mb(api.pid)
        peaks: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_peak, args=(api.pid, stop, peaks), daemon=True)
        sampler.start()
        verified = 0

        async def download(url: str) -> bool:
            digest = hashlib.sha256()
            async with httpx.AsyncClient(timeout=120, trust_env=False) as http, \
                    http.stream("GET", url) as response:
                response.raise_for_status()
                async for chunk in response.aiter_bytes(256 * 1024):
                    digest.update(chunk)
            return digest.hexdigest() == digests[url]

        async def everything() -> list[bool]:
            return await asyncio.gather(*(download(url) for url in digests))

        started = time.perf_counter()
        verified = sum(asyncio.run(everything()))
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        high_water = peak_rss_mb(api.pid)
    peak = max(max(peaks, default=0.0), high_water)
    return {
        "streams": files, "mb_each": FILE_MB, "via": "GET /v1/files (signed local links)",
        "verified": verified, "seconds": round(seconds, 2),
        "idle_rss_mb": round(idle, 1), "peak_rss_mb": round(peak, 1),
        "goal": {"name": f"API peak RSS <= 150 MB while streaming {files} x {FILE_MB} MB",
                 "value": round(peak, 1), "target": 150, "met": peak <= 150},
    }


def worker_growth(workdir: Path, *, captures: int = 500, batch: int = 50) -> dict[str, Any]:
    """Worker tree RSS after each batch of captures; growth after the first batch."""
    pages = pick_pages(60)
    samples: list[dict[str, Any]] = []
    with docs_sites(6) as sites, stack(workdir / "memory-worker", SHOTLINE_ENGINE="chromium") as running:
        urls = spread(pages, sites)
        worker = running.processes.shotline_worker()
        base, _api = running.processes.api_process()
        client = running.redis()
        done = 0
        failed = 0
        while done < captures:
            size = min(batch, captures - done)
            bodies = [{"url": urls[(done + i) % len(urls)], "width": 1280, "height": 800}
                      for i in range(size)]
            submitted = asyncio.run(submit_all(base, bodies, concurrency=4))
            outcome = wait_finished(client, [s.job_id for s in submitted], timeout=600)
            failed += size - outcome.succeeded
            done += size
            memory = tree_memory(worker.pid)
            samples.append({"captures": done, "python_mb": round(memory.python_mb, 1),
                            "total_mb": round(memory.total_mb, 1), "processes": memory.processes})
        # A warm shutdown (SIGTERM) must leave no Chromium process of the worker's behind.
        session = os.getsid(worker.pid)
        stop_process(worker, timeout=60)
        time.sleep(1)
        leftovers = _session_processes(session)
    first, last = samples[0], samples[-1]
    growth_total = (last["total_mb"] - first["total_mb"]) / first["total_mb"] * 100
    growth_python = (last["python_mb"] - first["python_mb"]) / first["python_mb"] * 100
    peak_total = max(s["total_mb"] for s in samples)
    growth_peak = (peak_total - first["total_mb"]) / first["total_mb"] * 100
    return {
        "captures": captures, "failed": failed, "samples": samples,
        "leftover_processes_after_shutdown": leftovers,
        "growth_percent_total": round(growth_total, 1),
        "growth_percent_python": round(growth_python, 1),
        "growth_percent_peak_total": round(growth_peak, 1),
        "goal": {"name": f"worker RSS growth <= 10 % over {captures} captures",
                 "value": round(max(growth_total, growth_python), 1), "target": 10,
                 "met": max(growth_total, growth_python) <= 10 and not leftovers},
    }


#: The hostile pages of tests/pages/quality (each ends cleanly, tests/test_hostile_quality.py)
#: and of tests/hostile_pages.py (heap and buffer hogs, an endless page, ...), in turn.
HOSTILE_QUALITY_PAGES = (
    "/quality/self-redirect.html", "/quality/prints.html", "/quality/popups.html",
    "/quality/surrogate.html", "/quality/wide-tall.html", "/quality/busy-network.html",
    "/quality/polling.html", "/quality/chats.html", "/quality/ads.html",
    "/quality/font-hang.html", "/quality/late-render.html", "/quality/trackers.html",
)
HOSTILE_SERVER_PAGES = ("/heap-hog", "/buffer-hog", "/endless", "/permissions",
                        "/script-later", "/subresources")


def hostile_growth(workdir: Path, *, captures: int = 30) -> dict[str, Any]:
    """PSS of a worker's tree (``shotline worker``: threads, Chromium) after each of
    ``captures`` hostile pages captured one after another; growth from the first capture."""
    from tests.hostile_pages import HostilePages
    from tests.servers import PageServer

    samples: list[dict[str, Any]] = []
    with PageServer() as pages, HostilePages("127.0.0.1:9") as hostile, \
            stack(workdir / "memory-hostile", SHOTLINE_ENGINE="chromium") as running:
        urls = [pages.url(path) for path in HOSTILE_QUALITY_PAGES]
        urls += [hostile.url(path) for path in HOSTILE_SERVER_PAGES]
        worker = running.processes.shotline_worker(concurrency=1)
        base, _api = running.processes.api_process()
        client = running.redis()
        failed = 0
        for index in range(captures):
            body = {"url": urls[index % len(urls)], "full_page": index % 3 == 0,
                    "timeout_ms": 20000}
            [submitted] = asyncio.run(submit_all(base, [body], concurrency=1))
            outcome = wait_finished(client, [submitted.job_id], timeout=120)
            failed += 1 - outcome.succeeded
            pss, processes = tree_pss_mb(worker.pid)
            samples.append({"captures": index + 1, "pss_mb": pss["total"],
                            "python_mb": pss["python"], "node_mb": pss["node"],
                            "chromium_mb": pss["chromium"], "processes": processes})
    first, last = samples[0], samples[-1]
    peak = max(sample["pss_mb"] for sample in samples)
    return {
        "captures": captures, "failed": failed, "samples": samples,
        "first_pss_mb": first["pss_mb"], "last_pss_mb": last["pss_mb"], "peak_pss_mb": peak,
        "growth_mb": round(last["pss_mb"] - first["pss_mb"], 1),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def _session_processes(session: int) -> list[str]:
    """Names of the live processes of ``session`` (the worker's own, it runs as a leader)."""
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) == session:
                found.append(str(proc.info["name"]))
    return found


def run(workdir: Path, *, files: int = 20, captures: int = 500) -> dict[str, Any]:
    """Both memory measurements of documentation pages."""
    return {
        "benchmark": "memory",
        "api_streaming": api_streaming(workdir, files=files),
        "worker": worker_growth(workdir, captures=captures),
    }


def run_hostile(workdir: Path, *, hostile: int = 30) -> dict[str, Any]:
    """Only the hostile pages' measurement (``python -m bench memory-hostile``)."""
    return {"benchmark": "memory-hostile",
            "worker_hostile": hostile_growth(workdir, captures=hostile)}

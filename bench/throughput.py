"""Capture throughput: Shotline end to end versus shot-scraper ``multi``, same pages, same run.

Both shoot the same documentation pages (1280x800 PNG, ``load``), spread over several
loopback sites, with the same Chromium binary. shot-scraper ``multi`` uses one browser and
one shared context for every shot (no isolation between pages). Shotline goes the whole
way: ``POST /v1/screenshots`` → Redis/Celery → worker → Chromium (a fresh context per
job) → local storage → status record; its time runs from the first submission to the last
``finished_at``, with the workers already started (a server's steady state).

shot-scraper starts its browser inside the timed run. Its steady-state rate is measured
too, as ``(N - 1) / (t(N) - t(1))`` from a one-page run, and the ratio uses that figure,
which is the more demanding comparison for Shotline.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from PIL import Image, ImageChops

from bench.client import submit_all, wait_finished
from bench.pages import docs_sites, pick_pages, spread
from bench.stack import Stack, stack, tree_cpu_seconds
from worker.engines.browser import SYSTEM_CHROMIUM

WIDTH, HEIGHT = 1280, 800

#: Shotline configurations compared in the same run: name → (worker pool, concurrency, env).
CONFIGS: dict[str, tuple[str, int, dict[str, str]]] = {
    "shotline (plain engine, prefork x2)": ("prefork", 2, {
        "SHOTLINE_CHROMIUM_WARM_CONTEXTS": "0", "SHOTLINE_CHROMIUM_FAST_SCREENSHOT": "false",
    }),
    "shotline (default)": ("", 0, {}),
    # One browser, three captures in flight on the process's event loop (WORKER_POOL=threads):
    # the browser's fixed processes serve every capture and one capture's waits are filled by
    # another's work (bench/README.md); not the default, which keeps a process per core.
    "shotline (threads x3, one browser)": ("threads", 3, {}),
}


@dataclass(frozen=True, slots=True)
class Run:
    """One timed run of one contender."""

    name: str
    shots: int
    ok: int
    seconds: float
    cpu_seconds: float
    extra: dict[str, Any]

    @property
    def shots_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "shots": self.shots, "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "shots_per_second": round(self.shots_per_second, 3),
            "cpu_seconds_per_shot": round(self.cpu_seconds / max(self.ok, 1), 4),
            **self.extra,
        }


# --- shot-scraper -------------------------------------------------------------------------

_MISSING_EXECUTABLE = re.compile(r"Executable doesn't exist at (\S+)")


def shot_scraper_env(shim: Path, chromium: str) -> dict[str, str]:
    """An environment in which shot-scraper's Playwright launches ``chromium``.

    shot-scraper has no option for a browser executable: it calls
    ``playwright.chromium.launch(headless=True)``, which runs Playwright's own headless
    shell from ``PLAYWRIGHT_BROWSERS_PATH``. A private browsers directory whose
    headless-shell path is a link to ``chromium`` makes it use the same binary as Shotline
    (Playwright passes the same flags either way). The expected path is taken from
    Playwright's own error message, so it follows Playwright's layout across versions.
    """
    env = {**os.environ, "PLAYWRIGHT_BROWSERS_PATH": str(shim)}
    probe = subprocess.run(
        [sys.executable, "-c",
         "from playwright.sync_api import sync_playwright\n"
         "with sync_playwright() as p: p.chromium.launch(headless=True).close()"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    if probe.returncode == 0:
        return env
    found = _MISSING_EXECUTABLE.search(probe.stderr)
    if found is None:
        raise RuntimeError(f"cannot point Playwright at {chromium}:\n{probe.stderr[-2000:]}")
    target = Path(found.group(1))
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    target.symlink_to(chromium)
    return env


def run_shot_scraper(urls: list[str], outdir: Path, env: dict[str, str]) -> Run:
    """``shot-scraper multi`` over ``urls``; wall and CPU time of the whole process tree."""
    outdir.mkdir(parents=True, exist_ok=True)
    shots = [{"url": url, "output": str(outdir / f"{index:03d}.png"), "width": WIDTH,
              "height": HEIGHT} for index, url in enumerate(urls)]
    config = outdir / "shots.yml"
    config.write_text(yaml.safe_dump(shots))
    executable = shutil.which("shot-scraper", path=str(Path(sys.executable).parent))
    if executable is None:
        raise RuntimeError("shot-scraper is not installed: pip install -e '.[bench]'")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([executable, "multi", str(config), "--silent"], env=env,
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"shot-scraper failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ok = sum(1 for shot in shots if Path(str(shot["output"])).is_file())
    return Run("shot-scraper multi", len(urls), ok, seconds, cpu, {})


# --- Shotline -----------------------------------------------------------------------------


def start_shotline(workdir: Path, pool: str, concurrency: int, env: dict[str, str]) -> tuple[
    contextlib.ExitStack, Stack, str, list[int]
]:
    """Redis, a chromium worker and the API; returns them with the pids to account CPU to."""
    exits = contextlib.ExitStack()
    running = exits.enter_context(stack(workdir, SHOTLINE_ENGINE="chromium", **env))
    worker_args: dict[str, Any] = {}
    if pool:
        worker_args.update(pool=pool, concurrency=concurrency)
    worker = running.processes.shotline_worker(**worker_args)
    base, api = running.processes.api_process()
    redis_pid = int(running.redis().info("server")["process_id"])
    return exits, running, base, [worker.pid, api.pid, redis_pid]


def run_shotline(name: str, running: Stack, base: str, pids: list[int], urls: list[str],
                 outdir: Path) -> Run:
    """Submit every URL, wait for all jobs, then fetch and check every result."""
    client = running.redis()
    bodies = [{"url": url, "width": WIDTH, "height": HEIGHT, "format": "png"} for url in urls]
    cpu_before = tree_cpu_seconds(pids)
    submitted = asyncio.run(submit_all(base, bodies, concurrency=4))
    outcome = wait_finished(client, [item.job_id for item in submitted], timeout=600)
    cpu = tree_cpu_seconds(pids) - cpu_before
    first = min(item.sent for item in submitted)
    seconds = (outcome.last_finished or time.time()) - first
    outdir.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=30, trust_env=False) as http:
        for index, item in enumerate(submitted):
            response = http.get(f"{base}/v1/jobs/{item.job_id}/result", follow_redirects=True)
            if response.status_code == 200:
                (outdir / f"{index:03d}.png").write_bytes(response.content)
    ok = sum(1 for index in range(len(urls)) if _is_shot(outdir / f"{index:03d}.png"))
    failed = {status: n for status in set(outcome.statuses.values())
              if status != "succeeded" and (n := list(outcome.statuses.values()).count(status))}
    return Run(name, len(urls), ok, seconds, cpu, {"not_succeeded": failed})


def _is_shot(path: Path) -> bool:
    if not path.is_file():
        return False
    with Image.open(path) as image:
        return image.format == "PNG" and image.size == (WIDTH, HEIGHT)


def identical_pixels(left: Path, right: Path) -> bool:
    """Whether two images have exactly the same pixels (encodings may differ)."""
    if not (left.is_file() and right.is_file()):
        return False
    with Image.open(io.BytesIO(left.read_bytes())) as a, \
            Image.open(io.BytesIO(right.read_bytes())) as b:
        if a.size != b.size:
            return False
        return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None


# --- The benchmark ------------------------------------------------------------------------


def run(workdir: Path, *, pages: int = 60, hosts: int = 6, rounds: int = 2) -> dict[str, Any]:
    """Shotline (each configuration of :data:`CONFIGS`) and shot-scraper, interleaved for
    ``rounds`` rounds; the best round of each counts (least disturbed by other load)."""
    chosen = pick_pages(pages)
    results: dict[str, list[Run]] = {}
    with docs_sites(hosts) as sites:
        urls = spread(chosen, sites)
        env = shot_scraper_env(workdir / "playwright-browsers", SYSTEM_CHROMIUM)
        startup = run_shot_scraper(urls[:1], workdir / "shot-scraper-1", env)
        started: dict[str, tuple[contextlib.ExitStack, Stack, str, list[int]]] = {}
        try:
            for name, (pool, concurrency, extra) in CONFIGS.items():
                slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
                started[name] = start_shotline(workdir / slug, pool, concurrency, extra)
                _, running, base, pids = started[name]
                run_shotline(name, running, base, pids, urls[:4], workdir / slug / "warmup")
            for round_index in range(rounds):
                for name in started:
                    _, running, base, pids = started[name]
                    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
                    results.setdefault(name, []).append(run_shotline(
                        name, running, base, pids, urls, workdir / slug / f"round-{round_index}"))
                results.setdefault("shot-scraper multi", []).append(
                    run_shot_scraper(urls, workdir / f"shot-scraper-{round_index}", env))
        finally:
            for exits, *_ in started.values():
                exits.close()
    best = {name: max(runs, key=lambda r: r.shots_per_second) for name, runs in results.items()}
    reference = best["shot-scraper multi"]
    steady_seconds = reference.seconds - startup.seconds
    steady_rate = (reference.ok - 1) / steady_seconds if steady_seconds > 0 else 0.0
    default_name = "shotline (default)"
    rows = []
    for name, runs in results.items():
        row = best[name].as_dict()
        row["all_rounds_shots_per_second"] = [round(r.shots_per_second, 3) for r in runs]
        row["ratio_vs_shot_scraper_steady"] = round(best[name].shots_per_second / steady_rate, 3)
        rows.append(row)
    ratio = best[default_name].shots_per_second / steady_rate
    return {
        "benchmark": "throughput",
        "pages": pages, "hosts": hosts, "rounds": rounds, "size": f"{WIDTH}x{HEIGHT}",
        "format": "png",
        "shot_scraper_startup_seconds": round(startup.seconds, 3),
        "shot_scraper_steady_shots_per_second": round(steady_rate, 3),
        "rows": rows,
        "goal": {"name": "capture throughput >= 1.5x shot-scraper multi (steady state)",
                 "value": round(ratio, 3), "target": 1.5, "met": ratio >= 1.5},
    }

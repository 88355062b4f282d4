"""In-process capture loops compared with Shotline: raw Playwright, and Shotline's engine alone.

``python -m bench.contenders KIND --urls FILE --executable PATH --concurrency N --out DIR``
runs one contender in a process of its own and prints one JSON line: shots, wall seconds
and CPU seconds of its whole process tree (Python, Playwright's driver, Chromium and its
children) over the timed window only (after a warm-up: browser launched, first pages
shot), split by kind of process (:mod:`bench.proctree`).

- ``raw``: raw Playwright, one browser, a fresh context and page per shot, ``N`` shots in
  flight: ``new_context(viewport)`` → ``goto(load)`` → ``screenshot(png)`` → ``close``.
  The limit for isolated captures on this machine: Shotline's engine should cost no more.
- ``engine``: :class:`~worker.engines.chromium.ChromiumEngine` with the worker's settings
  (egress gate, warm contexts, waits, encoders), ``N`` captures in flight on one event
  loop, no queue, no storage: what the engine adds over ``raw``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from bench.proctree import TreeProfile
from bench.stack import tree_cpu_seconds

WIDTH, HEIGHT = 1280, 800

Shoot = Callable[[int, str], Awaitable[bool]]


async def _loop(urls: list[str], concurrency: int, shoot: Shoot) -> int:
    """Shoot every URL, ``concurrency`` at once; how many succeeded."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(urls):
        queue.put_nowait(item)
    ok = 0

    async def one_lane() -> None:
        nonlocal ok
        while not queue.empty():
            index, url = queue.get_nowait()
            if await shoot(index, url):
                ok += 1

    await asyncio.gather(*(one_lane() for _ in range(concurrency)))
    return ok


async def _timed(urls: list[str], warmup: list[str], concurrency: int,
                 shoot: Shoot) -> dict[str, Any]:
    await _loop(warmup, concurrency, shoot)
    pid = os.getpid()
    profile = TreeProfile([pid]).start()
    cpu_before = tree_cpu_seconds([pid])
    started = time.perf_counter()
    ok = await _loop(urls, concurrency, shoot)
    seconds = time.perf_counter() - started
    cpu = tree_cpu_seconds([pid]) - cpu_before
    profile.stop()
    cpu -= profile.sampler_seconds  # the sampler thread is the bench's, not the contender's
    split = profile.by_kind()
    split["python"] = split.get("python", 0.0) - profile.sampler_seconds
    split["unsampled"] = cpu - sum(split.values())
    return {"shots": len(urls), "ok": ok, "seconds": seconds, "cpu_seconds": cpu,
            "by_kind": {kind: round(value, 3) for kind, value in split.items()}}


async def raw_playwright(urls: list[str], warmup: list[str], *, executable: str,
                         concurrency: int, out: Path) -> dict[str, Any]:
    """Raw Playwright: one browser, a fresh context and page per shot."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)

        async def shoot(index: int, url: str) -> bool:
            context = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            try:
                page = await context.new_page()
                await page.goto(url, wait_until="load", timeout=60_000)
                (out / f"{index:03d}.png").write_bytes(await page.screenshot(type="png"))
                return True
            except Exception as exc:  # a failed shot counts as not ok, the run goes on
                print(f"raw shot failed: {url}: {exc}", file=sys.stderr)
                return False
            finally:
                await context.close()

        try:
            return await _timed(urls, warmup, concurrency, shoot)
        finally:
            await browser.close()


async def engine_loop(urls: list[str], warmup: list[str], *, executable: str,
                      concurrency: int, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """Shotline's engine alone, with the settings a worker would get (``env`` on top)."""
    from shared.jobs import CaptureOptions
    from shared.settings import Settings
    from worker.engines import make_engine
    from worker.engines.chromium import ChromiumEngine

    settings = Settings.model_validate({
        "engine": "chromium", "chromium_path": executable,
        "allowed_networks": [ip_network("127.0.0.0/8")],
        **{key.removeprefix("SHOTLINE_").lower(): value for key, value in env.items()},
    })
    engine = make_engine(settings)
    assert isinstance(engine, ChromiumEngine)
    await engine.start()

    async def shoot(index: int, url: str) -> bool:
        options = CaptureOptions(url=url, width=WIDTH, height=HEIGHT, timeout_ms=60_000)
        try:
            capture = await engine.capture(options)
        except Exception as exc:  # a failed shot counts as not ok, the run goes on
            print(f"engine shot failed: {url}: {exc}", file=sys.stderr)
            return False
        (out / f"{index:03d}.png").write_bytes(capture.data)
        return True

    try:
        return await _timed(urls, warmup, concurrency, shoot)
    finally:
        await engine.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contenders", description=__doc__)
    parser.add_argument("kind", choices=["raw", "engine"])
    parser.add_argument("--urls", type=Path, required=True, help="one URL a line")
    parser.add_argument("--executable", required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--env", action="append", default=[],
                        help="SHOTLINE_NAME=value settings for the engine (repeatable)")
    args = parser.parse_args(argv)
    urls = args.urls.read_text().split()
    warmup = urls[: args.warmup]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kind == "raw":
        result = asyncio.run(raw_playwright(
            urls, warmup, executable=args.executable, concurrency=args.concurrency, out=args.out))
    else:
        env = dict(item.split("=", 1) for item in args.env)
        result = asyncio.run(engine_loop(
            urls, warmup, executable=args.executable, concurrency=args.concurrency,
            out=args.out, env=env))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pages whose third-party hosts are dead: Shotline's engine versus a plain browser.

Real pages pull scripts, images and beacons from dozens of third-party hosts, and some of
those are blocked, dead or slow. Every page here (a short article served from loopback)
pulls from:

- unresolvable hosts: ``*.invalid`` names, several requests each (the system resolver
  answers "no such name");
- refused ports: images from a loopback port nothing listens on;
- a black-holed host: a loopback listener whose accept queue is full, so that its SYNs are
  dropped and connections hang, reached by ``fetch`` beacons (which do not hold the page's
  ``load`` back; an image from it would hold any browser until its connect timeout).

The pages are captured one at a time by raw Playwright (a plain browser: Chromium resolves
and connects itself, no egress gate) and by Shotline's ``ChromiumEngine`` (every
connection through its egress gate, each host resolved once per capture), both on the
headless shell, alternating page by page. Slow or dead *DNS servers* (a lookup that hangs)
cannot be staged without changing the machine's resolver; ``tests/test_egress.py`` covers
them with a resolver that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from worker.engines.browser import SYSTEM_HEADLESS_SHELL

#: Dead hosts per page: unresolvable names (3 requests each), refused ports, black holes.
UNRESOLVABLE_HOSTS = 12
REQUESTS_PER_HOST = 3
REFUSED = 4
BLACK_HOLED = 2


def page_html(index: int, refused_port: int, black_hole: str) -> str:
    """One article pulling from dead third parties."""
    parts = [f"<!doctype html><html><head><title>article {index}</title>"]
    for host in range(UNRESOLVABLE_HOSTS):
        name = f"cdn{host}.site{index}.dead.invalid"
        parts.append(f'<script src="http://{name}/tag.js"></script>')
        parts.extend(f'<link rel="stylesheet" href="http://{name}/style{n}.css">'
                     for n in range(REQUESTS_PER_HOST - 1))
    parts.append("</head><body><h1>An article</h1>")
    parts.extend("<p>" + "Some text of the article. " * 40 + "</p>" for _ in range(6))
    parts.extend(f'<img src="http://127.0.0.1:{refused_port}/pixel{n}.png" width="1" height="1">'
                 for n in range(REFUSED))
    parts.append("<script>")
    parts.extend(f'fetch("http://{black_hole}/beacon{n}").catch(() => null);'
                 for n in range(BLACK_HOLED))
    parts.append("</script></body></html>")
    return "".join(parts)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        pages: dict[str, str] = self.server.pages  # type: ignore[attr-defined]
        body = pages.get(self.path, "not found").encode()
        self.send_response(200 if self.path in pages else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def dead_host_pages(count: int) -> Iterator[list[str]]:
    """Serve ``count`` pages on 127.0.0.2, with a refused port and a black hole ready."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused_port = int(probe.getsockname()[1])  # closed again: nothing listens there
    hole = socket.socket()
    hole.bind(("127.0.0.3", 0))
    hole.listen(0)
    filler = socket.create_connection(hole.getsockname(), timeout=2)  # the queue is full now
    black_hole = f"127.0.0.3:{hole.getsockname()[1]}"
    server = ThreadingHTTPServer(("127.0.0.2", 0), _Handler)
    server.daemon_threads = True
    server.pages = {  # type: ignore[attr-defined]
        f"/article-{index}.html": page_html(index, refused_port, black_hole)
        for index in range(count)
    }
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [f"http://127.0.0.2:{server.server_address[1]}/article-{index}.html"
               for index in range(count)]
    finally:
        server.shutdown()
        server.server_close()
        filler.close()
        hole.close()


async def _plain(urls: list[str], timeout_s: float) -> list[float | None]:
    from playwright.async_api import async_playwright

    times: list[float | None] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=SYSTEM_HEADLESS_SHELL)
        try:
            for url in urls:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                started = time.perf_counter()
                try:
                    page = await context.new_page()
                    await page.goto(url, wait_until="load", timeout=timeout_s * 1000)
                    await page.screenshot(type="png")
                    times.append(time.perf_counter() - started)
                except Exception:  # a page that could not be captured counts as None
                    times.append(None)
                finally:
                    await context.close()
        finally:
            await browser.close()
    return times


async def _shotline(urls: list[str], timeout_s: float) -> list[float | None]:
    from shared.jobs import CaptureOptions
    from shared.url_policy import UrlPolicy
    from worker.engines.chromium import ChromiumEngine

    engine = ChromiumEngine(policy=UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"),)),
                            max_result_bytes=50_000_000, executable_path=SYSTEM_HEADLESS_SHELL)
    times: list[float | None] = []
    await engine.start()
    try:
        for url in urls:
            started = time.perf_counter()
            try:
                await engine.capture(CaptureOptions(url=url, timeout_ms=int(timeout_s * 1000)))
                times.append(time.perf_counter() - started)
            except Exception:  # a page that could not be captured counts as None
                times.append(None)
    finally:
        await engine.aclose()
    return times


def _row(name: str, times: list[float | None]) -> dict[str, Any]:
    done = [one for one in times if one is not None]
    return {
        "name": name, "pages": len(times), "ok": len(done),
        "median_seconds": round(statistics.median(done), 3) if done else None,
        "max_seconds": round(max(done), 3) if done else None,
        "all_seconds": [None if one is None else round(one, 3) for one in times],
    }


def run(workdir: Path, *, pages: int = 10, timeout_s: float = 30.0) -> dict[str, Any]:
    """Both contenders over the same ``pages`` dead-host pages, alternating halves."""
    del workdir
    with dead_host_pages(pages) as urls:
        half = len(urls) // 2 or 1
        run_plain = functools.partial(_plain, timeout_s=timeout_s)
        run_shotline = functools.partial(_shotline, timeout_s=timeout_s)
        plain = asyncio.run(run_plain(urls[:half])) + asyncio.run(run_plain(urls[half:]))
        shotline = asyncio.run(run_shotline(urls[:half])) + asyncio.run(run_shotline(urls[half:]))
    rows = [_row("plain browser (raw Playwright, no gate)", plain),
            _row("Shotline engine (egress gate)", shotline)]
    plain_median = rows[0]["median_seconds"] or float("inf")
    shot_median = rows[1]["median_seconds"] or float("inf")
    ratio = shot_median / plain_median
    return {
        "benchmark": "deadhosts", "pages": pages,
        "dead_hosts_per_page": UNRESOLVABLE_HOSTS + 2,
        "requests_to_dead_hosts_per_page": UNRESOLVABLE_HOSTS * REQUESTS_PER_HOST + REFUSED
        + BLACK_HOLED,
        "rows": rows,
        "goal": {"name": "median capture time on dead-host pages <= 1.1x a plain browser's",
                 "value": round(ratio, 3), "target": 1.1,
                 "met": ratio <= 1.1 and rows[1]["ok"] >= rows[0]["ok"]},
    }

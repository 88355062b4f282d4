"""Warm browser contexts: opened ahead of demand, each serving exactly one capture.

A pooled context must isolate jobs exactly like one opened on demand (no cookie, storage
or cache passes between jobs), must reach the network only through its own egress gate
with the capture's navigation guard attached, and must be closed with the engine.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from ipaddress import ip_network

import pytest

from shared.errors import CaptureUrlBlocked
from shared.jobs import CaptureOptions
from shared.url_policy import UrlPolicy
from tests.engine_loop import EngineOnLoop
from tests.servers import LOOPBACK_POLICY, PageServer
from worker.engines.base import Capture
from worker.engines.chromium import ChromiumEngine

#: Only the page server on 127.0.0.1; the "other site" on 127.0.0.2 is refused.
ONLY_LOCALHOST = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))


class Pooled(EngineOnLoop):
    """An engine with warm contexts on its own event loop."""

    def settle(self) -> None:
        """Let the background refill finish (a worker's loop runs it during the next task)."""
        self.runner.run(self.engine.warm.refilled())


def pooled(policy: UrlPolicy) -> Iterator[Pooled]:
    engine = ChromiumEngine(policy=policy, max_result_bytes=50_000_000, warm_contexts=1)
    with asyncio.Runner() as runner:
        runner.run(engine.start())
        try:
            yield Pooled(engine, runner)
        finally:
            runner.run(engine.aclose())


@pytest.fixture
def loopback_engine() -> Iterator[Pooled]:
    yield from pooled(LOOPBACK_POLICY)


@pytest.fixture
def strict_engine() -> Iterator[Pooled]:
    yield from pooled(ONLY_LOCALHOST)


@pytest.fixture
def other_site() -> Iterator[PageServer]:
    """A page server on 127.0.0.2, which :data:`ONLY_LOCALHOST` refuses."""
    with PageServer(host="127.0.0.2") as server:
        yield server


def test_jobs_in_pooled_contexts_share_no_cookies_storage_or_cache(
    loopback_engine: Pooled, page_server: PageServer
) -> None:
    seen_before = len(page_server.headers_seen)  # the page server serves the whole session
    titles = []
    for _ in range(3):
        loopback_engine.settle()
        titles.append(loopback_engine.capture(page_server.url("/cookie.html")).title)
    # Each job set a cookie and a localStorage item; the next one saw neither.
    assert titles == ["fresh,set"] * 3
    # The contexts really came from the pool (the first may have been opened on demand).
    assert loopback_engine.engine.warm.hits >= 2
    # No HTTP cache either: no later request revalidated what an earlier job cached.
    probes = [headers for path, headers in page_server.headers_seen[seen_before:]
              if path == "/cookie.html"]
    assert len(probes) == 3
    assert not any("If-Modified-Since" in headers for headers in probes), probes


def test_a_pooled_context_gate_refuses_what_the_policy_refuses(
    strict_engine: Pooled, page_server: PageServer, other_site: PageServer
) -> None:
    strict_engine.capture(page_server.url("/index.html"))
    strict_engine.settle()
    hits = strict_engine.engine.warm.hits
    # A redirect to the refused site: the navigation guard of this job fails the capture.
    redirect = page_server.url(f"/redirect?to={other_site.url('/index.html')}")
    with pytest.raises(CaptureUrlBlocked, match=r"127\.0\.0\.2"):
        strict_engine.capture(redirect)
    assert strict_engine.engine.warm.hits == hits + 1  # it was a pooled context
    strict_engine.settle()
    with pytest.raises(CaptureUrlBlocked, match=r"127\.0\.0\.2"):
        strict_engine.capture(other_site.url("/index.html"))
    assert strict_engine.engine.warm.hits == hits + 2
    assert other_site.requests == []  # nothing reached the refused site
    assert strict_engine.engine.open_contexts == 0


def test_a_pooled_context_gets_the_viewport_of_its_job(
    loopback_engine: Pooled, page_server: PageServer
) -> None:
    """Contexts are warmed for the options of the last job: another viewport is opened on
    demand, then warmed for the next job like it."""
    loopback_engine.settle()
    misses = loopback_engine.engine.warm.misses
    sizes = []
    for _ in range(2):
        capture = loopback_engine.capture(page_server.url("/index.html"), width=500, height=300)
        sizes.append(capture.data[16:24])  # the PNG header's width and height
        loopback_engine.settle()
    assert sizes == [(500).to_bytes(4, "big") + (300).to_bytes(4, "big")] * 2
    assert loopback_engine.engine.warm.misses == misses + 1  # only the first was on demand


def test_aclose_closes_the_warm_contexts_and_their_gates(page_server: PageServer) -> None:
    engine = ChromiumEngine(policy=LOOPBACK_POLICY, max_result_bytes=50_000_000,
                            warm_contexts=2)
    with asyncio.Runner() as runner:
        runner.run(engine.start())
        try:
            runner.run(engine.capture(CaptureOptions(url=page_server.url("/index.html"))))
            Pooled(engine, runner).settle()
            ports = [warm.gate.port for warm in engine.warm.contexts]
            assert len(ports) == 2
            assert engine.open_contexts == 0  # warm contexts are not captures in progress
        finally:
            runner.run(engine.aclose())
    assert engine.warm.ready == 0
    for port in ports:  # the gates no longer listen: no way out is left open
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


def test_captures_in_flight_together_each_find_a_warm_context(page_server: PageServer) -> None:
    """With several captures at once on one event loop, each takes a warm context of its
    own (none is shared), and every one of them still starts fresh."""
    engine = ChromiumEngine(policy=LOOPBACK_POLICY, max_result_bytes=50_000_000,
                            warm_contexts=3)

    async def three_at_once() -> list[Capture]:
        return list(await asyncio.gather(*(
            engine.capture(CaptureOptions(url=page_server.url("/cookie.html"), timeout_ms=20000))
            for _ in range(3)
        )))

    with asyncio.Runner() as runner:
        pool = Pooled(engine, runner)
        runner.run(engine.start())
        try:
            pool.capture(page_server.url("/index.html"))  # the browser, then 3 warm contexts
            pool.settle()
            assert engine.warm.ready == 3
            hits = engine.warm.hits
            captures = runner.run(three_at_once())
        finally:
            runner.run(engine.aclose())
    assert [capture.title for capture in captures] == ["fresh,set"] * 3
    assert engine.warm.hits == hits + 3

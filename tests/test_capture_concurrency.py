"""Several captures in flight on one browser: what the prefork pool gave still holds.

A wedged capture is ended at its time limit and its renderer stops (it does not keep a
core busy beside the others), a browser crash costs only the captures in flight (each a
retryable error, the next capture relaunches), and recycling the browser under constant
load (never idle) fails no capture and leaves one browser, so memory stays bounded. End
to end, a browser killed under a worker's three captures loses no job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest

from shared.errors import CaptureTimeout, EngineError
from tests.conftest import ProcessFactory
from tests.polling import submit, wait_for_job
from tests.procs import BROWSER_NAMES
from tests.servers import PageServer
from tests.test_chromium_engine import EngineUnderTest, start_engine
from worker.engines.base import Capture
from worker.engines.browser import CLOSE_GRACE_S


@pytest.fixture
def engine(page_server: PageServer) -> Iterator[EngineUnderTest]:
    with asyncio.Runner() as runner:
        under_test = start_engine(runner, page_server, recycle_after=4)
        try:
            yield under_test
        finally:
            runner.run(under_test.engine.aclose())


def renderer_cpu(engine: EngineUnderTest) -> dict[int, float]:
    """CPU seconds so far of each live renderer of ``engine``."""
    found = {}
    for proc in engine.processes():
        if proc.is_renderer:
            try:
                times = psutil.Process(proc.pid).cpu_times()
            except psutil.Error:
                continue
            found[proc.pid] = times.user + times.system
    return found


def test_a_wedged_capture_is_ended_and_its_renderer_stopped_while_others_succeed(
    engine: EngineUnderTest,
) -> None:
    async def three() -> list[Capture | BaseException]:
        captures = {
            name: asyncio.ensure_future(engine.engine.capture(engine.options(path, timeout_ms=ms)))
            for name, path, ms in (("busy", "/busy.html", 1500), ("first", "/index.html", 20000),
                                   ("second", "/index.html", 20000))
        }
        # Every capture ends by its own time limit (+ the close grace): none may outlive it.
        _done, pending = await asyncio.wait(captures.values(), timeout=20 + CLOSE_GRACE_S + 5)
        late = [name for name, task in captures.items() if task in pending]
        for task in pending:
            task.cancel()
        assert not late, f"captures outlived their time limit: {late}"
        return [task.exception() or task.result() for task in captures.values()]

    started = time.monotonic()
    wedged, *others = engine.run(three())
    assert isinstance(wedged, CaptureTimeout)
    assert time.monotonic() - started < 1.5 + CLOSE_GRACE_S + 1
    assert all(isinstance(one, Capture) and one.http_status == 200 for one in others), others
    # busy.html spins forever: had its renderer survived, it would burn a core from now on.
    time.sleep(0.5)
    before = renderer_cpu(engine)
    time.sleep(1.0)
    after = renderer_cpu(engine)
    spinning = {pid: after[pid] - before[pid] for pid in after.keys() & before.keys()
                if after[pid] - before[pid] > 0.5}
    assert not spinning, spinning
    assert engine.engine.open_contexts == 0


def test_a_browser_crash_costs_only_the_captures_in_flight(engine: EngineUnderTest) -> None:
    async def crash_under_three() -> list[BaseException | Capture]:
        # hang.html never finishes loading: the three are in flight when the browser dies.
        asked = engine.pages.requests.count("/slow?ms=60000")
        captures = [asyncio.ensure_future(engine.engine.capture(
            engine.options("/hang.html", timeout_ms=20000))) for _ in range(3)]
        for _ in range(200):
            if engine.pages.requests.count("/slow?ms=60000") >= asked + 3:
                break
            await asyncio.sleep(0.05)
        [browser] = [proc for proc in engine.processes() if proc.is_browser]
        os.kill(browser.pid, signal.SIGKILL)
        async with asyncio.timeout(10):
            return await asyncio.gather(*captures, return_exceptions=True)

    launches = engine.engine.launches
    outcomes = engine.run(crash_under_three())
    assert all(isinstance(one, EngineError) and one.retryable for one in outcomes), outcomes
    assert engine.capture("/index.html").http_status == 200
    assert engine.engine.launches == launches + 1


def test_recycling_under_constant_load_fails_no_capture_and_leaves_one_browser(
    engine: EngineUnderTest,
) -> None:
    """recycle_after=4 with three captures always in flight: the browser is never idle,
    so it is retired (new captures go to a new one) and closed once its last one ends."""

    async def twelve() -> list[Capture]:
        lanes: asyncio.Queue[int] = asyncio.Queue()
        for index in range(12):
            lanes.put_nowait(index)
        done: list[Capture] = []

        async def lane() -> None:
            while not lanes.empty():
                lanes.get_nowait()
                done.append(await engine.engine.capture(engine.options("/index.html")))

        await asyncio.gather(lane(), lane(), lane())
        return done

    launches = engine.engine.launches
    captures = engine.run(twelve())
    assert len(captures) == 12
    # Recycled at least once while never idle (before, a busy browser was never recycled;
    # while one drains, the next is not checked, so how many more is a matter of timing).
    assert engine.engine.launches >= launches + 1

    def browsers() -> int:
        return len([proc for proc in engine.processes() if proc.is_browser])

    deadline = time.monotonic() + 10
    while browsers() > 1 and time.monotonic() < deadline:
        engine.run(asyncio.sleep(0.1))
    # The retired browsers are gone; the last one may be closed too (it served its 4, idle).
    assert browsers() <= 1


def test_a_browser_killed_under_a_threads_worker_loses_no_job(
    processes: ProcessFactory, page_server: PageServer
) -> None:
    """End to end, the default pool (threads, several captures on one browser): the browser
    is killed with three captures in flight; they are retried and every job succeeds."""
    worker, _ = processes.cli_worker(SHOTLINE_ENGINE="chromium", SHOTLINE_WORKER_CONCURRENCY="3",
                                     SHOTLINE_CAPTURE_MAX_ATTEMPTS="3")
    base = processes.api(SHOTLINE_ENGINE="chromium")
    marker = uuid.uuid4().hex
    with httpx.Client(timeout=30) as client:
        accepted = [submit(client, base, url=page_server.url(f"/slow?ms=3000&job={marker}-{n}"))
                    for n in range(6)]

        def in_flight() -> int:
            return len([path for path in page_server.requests if marker in path])

        deadline = time.monotonic() + 60
        while in_flight() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert in_flight() >= 3
        browsers = [proc for proc in psutil.Process(worker.pid).children(recursive=True)
                    if proc.name() in BROWSER_NAMES
                    and not any(arg.startswith("--type=") for arg in proc.cmdline())]
        assert len(browsers) == 1, browsers  # one browser for every capture of the worker
        browsers[0].kill()
        records = [wait_for_job(client, job["status_url"], timeout=120) for job in accepted]
    assert [record["status"] for record in records] == ["succeeded"] * 6, records
    assert max(record["attempts"] for record in records) >= 2  # the ones the crash cost

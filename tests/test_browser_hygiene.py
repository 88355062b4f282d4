"""Chromium hygiene in one process: recycling after N captures or M MB, nothing left behind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from shared.jobs import CaptureOptions
from tests.procs import Marked, wait_for, zombies_of
from tests.servers import PageServer
from worker.engines.browser import browser_rss_bytes
from worker.engines.chromium import ChromiumEngine


@pytest.fixture
def marked(monkeypatch: pytest.MonkeyPatch) -> Iterator[Marked]:
    """A marker inherited by the Playwright driver and Chromium started in this test."""
    found = Marked()
    for name, value in found.env.items():
        monkeypatch.setenv(name, value)
    yield found


def test_browser_is_recycled_after_n_captures_and_on_memory(
    page_server: PageServer, marked: Marked
) -> None:
    options = CaptureOptions(url=page_server.url("/index.html"), width=300, height=200)

    async def scenario() -> tuple[list[int], list[int], int]:
        by_count = ChromiumEngine(max_result_bytes=10**8, recycle_after=2)
        by_memory = ChromiumEngine(max_result_bytes=10**8, recycle_rss_mb=1)
        launches, memory_launches = [], []
        try:
            for _ in range(4):
                await by_count.capture(options)
                launches.append(by_count.launches)
            rss = browser_rss_bytes()
            for _ in range(2):
                await by_memory.capture(options)
                memory_launches.append(by_memory.launches)
        finally:
            await by_count.aclose()
            await by_memory.aclose()
        return launches, memory_launches, rss

    launches, memory_launches, rss = asyncio.run(scenario())
    assert launches == [1, 1, 2, 2]  # a new browser for every second capture
    assert memory_launches == [1, 2]  # any browser is above 1 MB: recycled every time
    assert rss > 2**20
    assert wait_for(lambda: not marked.chromium(), timeout=10), marked.chromium()
    assert not zombies_of({os.getpid()})

"""Chaos on real processes: workers killed mid-capture, SIGTERM, Chromium crashes and hangs.

Every test starts its own API and worker processes (Redis DB 0 of the session's server,
emptied per test) with a short visibility timeout, so that messages of a dead worker come
back within seconds, and a fast sweeper.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from shotline.webhooks import generate_secret
from tests.conftest import ProcessFactory
from tests.polling import submit
from tests.procs import Marked, wait_for, zombies_of
from tests.servers import PageServer
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: Settings of every process in this module (as environment variables).
CHAOS_ENV = {
    # Short enough for recovery in seconds, long enough that a loaded machine (Chromium
    # starting in 10 s) rarely delivers a message twice.
    "SHOTLINE_VISIBILITY_TIMEOUT_SECONDS": "15",
    "SHOTLINE_SWEEP_INTERVAL_SECONDS": "0.5",
    "SHOTLINE_RUNNING_GRACE_SECONDS": "10",
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def submit_many(client: httpx.Client, base: str, count: int, **body: Any) -> list[str]:
    """Submit ``count`` captures; their status URLs."""
    return [submit(client, base, **body)["status_url"] for _ in range(count)]


def records(client: httpx.Client, urls: list[str]) -> list[dict[str, Any]]:
    return [client.get(url).raise_for_status().json() for url in urls]


def wait_all_terminal(client: httpx.Client, urls: list[str], *, timeout: float
                      ) -> list[dict[str, Any]]:
    """Poll until every job is succeeded or failed; the final records."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(client, urls)
        pending = [r for r in found if r["status"] not in ("succeeded", "failed")]
        if not pending:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} jobs not finished after {timeout}s: {pending[:3]}")
        time.sleep(0.25)


def count_status(client: httpx.Client, urls: list[str], status: str) -> int:
    return sum(1 for r in records(client, urls) if r["status"] == status)


def pool_children(worker: psutil.Popen | Any) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(worker.pid).children()
    return children


def no_chromium_left(marked: Marked, *, timeout: float = 20) -> None:
    assert wait_for(lambda: not marked.chromium(), timeout=timeout), [
        (p.pid, p.name()) for p in marked.chromium()
    ]


def test_kill_9_of_the_worker_main_process_loses_no_job(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer
) -> None:
    marked = Marked()
    base = processes.api(**CHAOS_ENV)
    first, _log = processes.worker(concurrency=2, **CHAOS_ENV, **marked.env)
    urls = submit_many(client, base, 20, url=page_server.url("/slow?ms=300"), timeout_ms=20000)
    assert wait_for(lambda: count_status(client, urls, "running") >= 2, timeout=30)
    children = pool_children(first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(5)
    # The orphaned pool processes end by themselves (their pipe to the main process is
    # gone), and take their browser with them.
    assert wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                                    for c in children), timeout=30)
    no_chromium_left(marked)

    processes.worker(concurrency=2, **CHAOS_ENV, **marked.env)
    done = wait_all_terminal(client, urls, timeout=150)
    assert [r["status"] for r in done] == ["succeeded"] * len(urls), [
        r for r in done if r["status"] != "succeeded"
    ]
    assert len({r["id"] for r in done}) == len(urls)


def test_kill_9_of_a_pool_child_mid_capture_loses_no_job(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer
) -> None:
    marked = Marked()
    env = {**CHAOS_ENV, "SHOTLINE_WEBHOOK_SECRET": generate_secret()}
    base = processes.api(**env)
    worker, _log = processes.worker(concurrency=2, **env, **marked.env)
    processes.webhook_worker(**env)
    with WebhookReceiver() as receiver:
        urls = submit_many(client, base, 20, url=page_server.url("/slow?ms=300"), timeout_ms=20000,
                           webhook_url=receiver.url())
        assert wait_for(lambda: count_status(client, urls, "running") >= 2, timeout=30)
        victim = pool_children(worker)[0]
        victim.kill()
        done = wait_all_terminal(client, urls, timeout=150)
        assert [r["status"] for r in done] == ["succeeded"] * len(urls), [
            r for r in done if r["status"] != "succeeded"
        ]
        assert any(r["attempts"] == 2 for r in done)  # the killed capture ran again
        # One job.succeeded event per job, none twice (receivers dedupe on webhook-id, but
        # Shotline should not make them): wait for all, then a little longer for strays.
        received = receiver.wait_for(len(urls), timeout=60)
        time.sleep(3)
        received = list(receiver.received)
    ids = [r.headers["webhook-id"] for r in received]
    assert len(ids) == len(set(ids)) == len(urls), sorted(ids)
    assert {json.loads(r.body)["data"]["id"] for r in received} == {r["id"] for r in done}
    # The killed child's browser went with it; the replacement child has its own.
    assert wait_for(lambda: len(marked.browsers()) <= 2, timeout=20), marked.browsers()
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    no_chromium_left(marked)
    assert not zombies_of({worker.pid})


def test_sigterm_lets_running_captures_finish_and_requeues_the_rest(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer
) -> None:
    marked = Marked()
    base = processes.api(**CHAOS_ENV)
    worker, _log = processes.worker(concurrency=1, SHOTLINE_SHUTDOWN_TIMEOUT_SECONDS="20",
                                   **CHAOS_ENV, **marked.env)
    urls = submit_many(client, base, 4, url=page_server.url("/slow?ms=2500"), timeout_ms=15000)
    assert wait_for(lambda: count_status(client, urls, "running") == 1, timeout=30)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    stopped_in = time.monotonic() - started
    found = records(client, urls)
    assert [r["status"] for r in found].count("succeeded") == 1, found  # the running one finished
    requeued = [r for r in found if r["status"] == "queued"]
    assert len(requeued) == 3 and all(r["attempts"] == 0 for r in requeued), found
    assert stopped_in < 10
    no_chromium_left(marked)

    processes.worker(concurrency=2, **CHAOS_ENV)
    done = wait_all_terminal(client, urls, timeout=60)
    assert all(r["status"] == "succeeded" for r in done), done


def test_sigterm_requeues_captures_still_running_at_the_shutdown_timeout(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer
) -> None:
    marked = Marked()
    base = processes.api(**CHAOS_ENV)
    worker, _log = processes.worker(concurrency=1, SHOTLINE_SHUTDOWN_TIMEOUT_SECONDS="2",
                                   **CHAOS_ENV, **marked.env)
    [url] = submit_many(client, base, 1, url=page_server.url("/slow?ms=9000"), timeout_ms=30000)
    assert wait_for(lambda: count_status(client, [url], "running") == 1, timeout=30)
    time.sleep(0.5)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    assert time.monotonic() - started < 8  # 2 s of grace, then cancelled
    assert client.get(url).json()["status"] in ("queued", "running")
    no_chromium_left(marked)
    assert not zombies_of({worker.pid})

    processes.worker(concurrency=1, **CHAOS_ENV)
    [done] = wait_all_terminal(client, [url], timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] >= 2, done

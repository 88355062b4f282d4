"""The capture worker's pool per engine: the I/O-bound SnapAPI engine runs a threads pool
whose captures all wait at once on the process's one event loop; the shutdown bound and
the no-loss guarantees hold for it. Real worker processes (``shotline worker``), the SnapAPI
stand-in, real Redis; concurrency is counted on the stand-in, never timed."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from shared.settings import Settings
from tests.conftest import ProcessFactory
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.polling import submit
from tests.procs import wait_for
from tests.test_chaos_workers import CHAOS_ENV, wait_all_terminal

KEY = "sk_test_pool"


@pytest.fixture
def snapapi() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key=KEY) as snap:
        yield snap


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def snap_env(snapapi: SnapApiStandIn, **extra: str) -> dict[str, str]:
    return {**CHAOS_ENV, "SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": KEY,
            "SHOTLINE_SNAPAPI_BASE_URL": snapapi.base_url,
            "SHOTLINE_SNAPAPI_MAX_CONCURRENCY": "50", **extra}


def test_the_pool_follows_the_engine() -> None:
    chromium = Settings(_env_file=None, engine="chromium")
    snap = Settings(_env_file=None, engine="snapapi", snapapi_max_concurrency=10)
    assert chromium.effective_worker_pool == "prefork"
    assert chromium.effective_worker_concurrency == (psutil.cpu_count() or 2)
    assert snap.effective_worker_pool == "threads"
    assert snap.effective_worker_concurrency == 10  # more threads could only wait for a slot
    many = snap.model_copy(update={"snapapi_max_concurrency": 10_000})
    assert many.effective_worker_concurrency == 64
    forced = snap.model_copy(update={"worker_pool": "prefork", "worker_concurrency": 3})
    assert (forced.effective_worker_pool, forced.effective_worker_concurrency) == ("prefork", 3)


def test_one_threads_worker_runs_many_snapapi_captures_at_once(
    processes: ProcessFactory, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    env = snap_env(snapapi, SHOTLINE_WORKER_CONCURRENCY="6")
    snapapi.hang = True
    worker, _log = processes.cli_worker("--queues", "capture", **env)
    base = processes.api(**env)
    urls = [submit(client, base, url=f"http://127.0.0.1:9/page?n={n}", width=200, height=150)[
        "status_url"] for n in range(10)]
    # Six captures wait on SnapAPI at once, from one process: no pool children.
    assert wait_for(lambda: snapapi.concurrency == 6, timeout=60), snapapi.concurrency
    assert psutil.Process(worker.pid).children() == []
    snapapi.hang = False
    snapapi.release()
    done = wait_all_terminal(client, urls, timeout=120)
    assert [r["status"] for r in done] == ["succeeded"] * len(urls), done
    assert all(r["attempts"] == 1 for r in done)
    assert snapapi.peak_concurrency == 6  # the pool's threads, no more
    assert len(snapapi.bodies) == len(urls)


def test_sigterm_on_a_threads_worker_requeues_captures_past_the_shutdown_timeout(
    processes: ProcessFactory, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    env = snap_env(snapapi, SHOTLINE_WORKER_CONCURRENCY="3", SHOTLINE_SHUTDOWN_TIMEOUT_SECONDS="2")
    snapapi.hang = True
    worker, log_path = processes.cli_worker("--queues", "capture", **env)
    base = processes.api(**env)
    urls = [submit(client, base, url=f"http://127.0.0.1:9/page?n={n}", width=200, height=150,
                   timeout_ms=30000)["status_url"] for n in range(5)]
    assert wait_for(lambda: snapapi.concurrency == 3, timeout=60)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    # 2 s of grace, then the running captures are cancelled (a threads pool's cold shutdown
    # would otherwise wait for them: SnapAPI never answers here).
    assert time.monotonic() - started < 15
    assert b"captures cancelled for shutdown" in log_path.read_bytes()

    snapapi.hang = False
    snapapi.release()
    processes.cli_worker("--queues", "capture", **{**env, "SHOTLINE_SHUTDOWN_TIMEOUT_SECONDS": "30"})
    done = wait_all_terminal(client, urls, timeout=90)
    assert [r["status"] for r in done] == ["succeeded"] * len(urls), done
    assert sorted(r["attempts"] for r in done) == [1, 1, 2, 2, 2], done  # three ran again

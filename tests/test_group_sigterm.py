"""SIGTERM to a worker's whole process group (``kill -TERM -PGID``; systemd's KillMode=
control-group does the same to every process of the unit): the running capture finishes,
its picture is stored, and the worker exits cleanly within its grace.

Every process of the group gets the signal at once: Celery's main process (which starts a
warm shutdown), the prefork pool's children and Playwright's driver. Only the main process
may act on it; the others finish what they run and are stopped by the main process.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ProcessFactory
from tests.polling import submit
from tests.procs import Marked, wait_for
from tests.servers import PageServer

pytestmark = [pytest.mark.timeout(120)]

#: The worker's shutdown grace (SHOTLINE_SHUTDOWN_TIMEOUT_SECONDS) in these tests.
GRACE_S = 20


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.mark.parametrize(("pool", "queues"), [
    ("threads", "capture"),
    ("prefork", "capture"),
    ("threads", "capture,webhooks"),  # the default: a webhook worker process beside it
])
def test_sigterm_to_the_process_group_lets_the_running_capture_finish(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer, pool: str,
    queues: str,
) -> None:
    marked = Marked()
    base = processes.api()
    # Started in a session of its own: its process group is its pid.
    worker, log_path = processes.cli_worker(
        "--queues", queues, SHOTLINE_WORKER_POOL=pool, SHOTLINE_WORKER_CONCURRENCY="1",
        SHOTLINE_SHUTDOWN_TIMEOUT_SECONDS=str(GRACE_S), **marked.env)
    url = submit(client, base, url=page_server.url("/slow?ms=4000"),
                 timeout_ms=30000)["status_url"]
    assert wait_for(lambda: client.get(url).json()["status"] == "running", timeout=60)
    time.sleep(1.0)  # the page is loading: Chromium is busy with it
    group = os.getpgid(worker.pid)
    assert group == worker.pid
    os.killpg(group, signal.SIGTERM)
    started = time.monotonic()
    code = worker.wait(GRACE_S + 10)
    stopped_in = time.monotonic() - started

    record = client.get(url).json()
    assert record["status"] == "succeeded", (record, log_path.read_text()[-3000:])
    assert record["attempts"] == 1, record
    picture = client.get(record["result"]["url"])
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    print(f"pool={pool} queues={queues}: worker exited {code} {stopped_in:.1f} s after the"
          " group SIGTERM")
    assert code == 0, log_path.read_text()[-3000:]
    assert stopped_in < GRACE_S, stopped_in  # it ended with its capture, not at the grace
    assert wait_for(lambda: not marked.chromium(), timeout=20)
    assert wait_for(lambda: not marked.processes(), timeout=20), marked.processes()

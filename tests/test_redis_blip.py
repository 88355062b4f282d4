"""A Redis blip (AOF on, restarted on the same port) while captures run: the jobs finish as
soon as Redis answers again, not when the sweeper's deadline (minutes) comes.

The settings are production's (visibility timeout, running grace, sweep interval): nothing
here waits for a timeout to recover the jobs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import ProcessFactory, base_env
from tests.polling import submit
from tests.servers import PageServer, free_port, run_redis

pytestmark = [pytest.mark.timeout(180)]

#: Longest wait from Redis answering again to the job finishing (the deadline-based
#: recovery this replaces took two minutes).
RECOVERED_WITHIN_S = 20.0


#: kombu's Redis transport keeps delivered, unacknowledged messages in this hash.
UNACKED_KEY = "unacked"


@contextlib.contextmanager
def redis_client(port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(port=port)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def status(client: httpx.Client, url: str) -> str | None:
    """The job's status, or None while the API cannot read it (Redis away)."""
    try:
        answer = client.get(url)
    except httpx.HTTPError:
        return None
    return str(answer.json()["status"]) if answer.status_code == 200 else None


@pytest.mark.parametrize(("pool", "page_ms", "away_s"), [
    ("threads", 6000, 2.0),  # Redis back before the capture ends
    ("threads", 1500, 8.0),  # the capture ends while Redis is away
    ("prefork", 6000, 2.0),
    ("prefork", 1500, 8.0),
])
def test_a_running_job_finishes_as_soon_as_redis_is_back(
    tmp_path: Path, client: httpx.Client, page_server: PageServer, pool: str, page_ms: int,
    away_s: float,
) -> None:
    port, directory = free_port(), tmp_path / "redis"
    redis = run_redis(directory, port=port, appendonly=True)
    redis.__enter__()
    factory = ProcessFactory(tmp_path, base_env(f"redis://127.0.0.1:{port}/0", tmp_path / "data"))
    try:
        base = factory.api()
        factory.cli_worker("--queues", "capture", SHOTLINE_WORKER_POOL=pool,
                           SHOTLINE_WORKER_CONCURRENCY="2")
        url = submit(client, base, url=page_server.url(f"/slow?ms={page_ms}"),
                     timeout_ms=30000)["status_url"]
        deadline = time.monotonic() + 60
        while status(client, url) != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.1)
        time.sleep(0.5)

        redis.__exit__(None, None, None)  # SIGTERM: Redis writes its AOF and exits
        time.sleep(away_s)
        redis = run_redis(directory, port=port, appendonly=True)
        redis.__enter__()  # answers once this returns
        back = time.monotonic()
        deadline = back + 150
        while (found := status(client, url)) not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"the job is still {found}"
            time.sleep(0.1)
        recovered_in = time.monotonic() - back
        print(f"pool={pool} page_ms={page_ms} away_s={away_s}: "
              f"{found} {recovered_in:.1f} s after Redis answered again")
        record = client.get(url).json()
        assert record["status"] == "succeeded", record
        assert record["attempts"] == 1, record  # it ran once, to its end
        assert client.get(record["result"]["url"]).status_code == 200
        assert recovered_in < RECOVERED_WITHIN_S

        # The worker takes new jobs again (its consumer reconnected) ...
        later = submit(client, base, url=page_server.url("/index.html"))["status_url"]
        deadline = time.monotonic() + 60
        while (found := status(client, later)) != "succeeded":
            assert time.monotonic() < deadline, f"the new job is still {found}"
            time.sleep(0.1)
        print(f"  a job submitted {recovered_in:.1f} s after Redis answered again finished"
              f" {time.monotonic() - back:.1f} s after it")
        # ... and the running job's message was acknowledged: nothing left to redeliver.
        with redis_client(port) as broker:
            deadline = time.monotonic() + 30
            while broker.hlen(UNACKED_KEY):
                assert time.monotonic() < deadline, broker.hkeys(UNACKED_KEY)
                time.sleep(0.1)
    finally:
        factory.stop_all()
        redis.__exit__(None, None, None)

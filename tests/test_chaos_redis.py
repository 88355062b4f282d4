"""A Redis restart (AOF on, same port) with jobs queued and running: none is lost, and the
API answers 503 with JSON and Retry-After while Redis is away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ProcessFactory, base_env
from tests.polling import submit
from tests.servers import PageServer, free_port, run_redis
from tests.test_chaos_workers import CHAOS_ENV, count_status, wait_all_terminal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def test_redis_restart_loses_no_job_and_the_api_answers_503_meanwhile(
    tmp_path: Path, client: httpx.Client, page_server: PageServer
) -> None:
    port, directory = free_port(), tmp_path / "redis"
    redis = run_redis(directory, port=port, appendonly=True)
    redis.__enter__()
    factory = ProcessFactory(tmp_path, base_env(f"redis://127.0.0.1:{port}/0", tmp_path / "data"))
    try:
        base = factory.api(**CHAOS_ENV)
        factory.worker(concurrency=2, **CHAOS_ENV)
        urls = [submit(client, base, url=page_server.url("/slow?ms=500"), timeout_ms=20000)[
            "status_url"] for _ in range(12)]
        deadline = time.monotonic() + 60
        while count_status(client, urls, "running") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)

        redis.__exit__(None, None, None)  # SIGTERM: Redis writes its AOF and exits
        started = time.monotonic()
        for method, path, body in (
            ("POST", "/v1/screenshots", {"url": page_server.url("/index.html")}),
            ("GET", urls[0].removeprefix(base), None),
        ):
            answer = client.request(method, base + path, json=body)
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"].isdigit()
            assert answer.json()["error"] == "service_unavailable"
            assert answer.json()["request_id"]
        ready = client.get(f"{base}/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"].isdigit()
        assert ready.json()["status"] == "unavailable"
        assert time.monotonic() - started < 15  # 503s come fast, not after long hangs
        time.sleep(2)

        redis = run_redis(directory, port=port, appendonly=True)
        redis.__enter__()
        deadline = time.monotonic() + 30
        while client.get(f"{base}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover by itself"
            time.sleep(0.2)
        urls.append(submit(client, base, url=page_server.url("/index.html"))["status_url"])
        done = wait_all_terminal(client, urls, timeout=150)
        assert [r["status"] for r in done] == ["succeeded"] * len(urls), [
            r for r in done if r["status"] != "succeeded"
        ]
    finally:
        factory.stop_all()
        redis.__exit__(None, None, None)

"""Webhooks end to end on real parts: API, capture and webhook Celery workers, Redis,
Chromium, and receivers on 127.0.0.1 that verify with the PyPI package ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis as sync_redis
from standardwebhooks import Webhook

from shared.connections import create_redis
from shared.constants import WEBHOOK_DUE_KEY
from shared.status_store import StatusStore
from shared.webhooks.delivery import open_delivery
from shared.webhooks.store import DeliveryStore, attempts_key
from shotline.webhooks import generate_secret, verify
from tests.conftest import ProcessFactory
from tests.polling import submit, wait_for_job
from tests.servers import PageServer, python_command
from tests.test_webhook_delivery import finished_job
from tests.webhook_receiver import Reply, WebhookReceiver

OLD_SECRET, NEW_SECRET = generate_secret(), generate_secret()
WEBHOOK_ENV = {
    "SHOTLINE_WEBHOOK_SECRET": NEW_SECRET,
    "SHOTLINE_WEBHOOK_PREVIOUS_SECRET": OLD_SECRET,
    "SHOTLINE_WEBHOOK_PREVIOUS_SECRET_EXPIRES_AT": str(int(time.time()) + 3600),
    "SHOTLINE_WEBHOOK_RETRY_SCHEDULE": "1,1",
    "SHOTLINE_WEBHOOK_TIMEOUT_SECONDS": "2",
    "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "1",
}


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    """An API, a capture worker and a webhook worker sharing the webhook settings."""
    base = module_processes.api(**WEBHOOK_ENV)
    module_processes.worker(**WEBHOOK_ENV)
    module_processes.webhook_worker(SHOTLINE_PUBLIC_BASE_URL=base, **WEBHOOK_ENV)
    return base


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def wait_for_delivery(client: httpx.Client, base: str, job_id: str, state: str,
                      *, timeout: float = 30) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}/deliveries`` until its state is ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        log: dict[str, Any] = client.get(f"{base}/v1/jobs/{job_id}/deliveries").raise_for_status().json()
        if log["state"] == state:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery still {log['state']} after {timeout}s: {log}")
        time.sleep(0.2)


def wait_for_attempts(redis_url: str, subject: str, count: int, *, timeout: float = 10) -> None:
    """Wait until ``subject``'s delivery has logged ``count`` attempts. A worker records an
    attempt (log, state and due set in one script) only after the receiver has answered, so
    a request seen by the receiver is not yet an outcome in Redis."""
    client = sync_redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while (logged := client.llen(attempts_key(subject))) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{logged} of {count} attempts logged after {timeout}s")
            time.sleep(0.05)
    finally:
        client.close()


def test_deliveries_verify_with_a_stock_library_across_a_secret_rotation(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    with WebhookReceiver() as receiver:
        accepted = submit(client, base, url=page_server.url("/index.html"),
                          webhook_url=receiver.url("/hooks/shotline"))
        job = wait_for_job(client, accepted["status_url"])
        assert job["status"] == "succeeded", job
        request = receiver.wait_for(1)[0]
    # Both the outgoing and the incoming secret verify, with an implementation no one here wrote.
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    events = [Webhook(secret).verify(request.body, request.headers)
              for secret in (OLD_SECRET, NEW_SECRET)]
    assert events[0] == events[1] == verify(request.body, request.headers, NEW_SECRET)
    event = events[0]
    assert event["type"] == "job.succeeded"
    assert request.headers["webhook-id"] == f"msg_{job['id']}_job_succeeded"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    latency = request.at - datetime.fromisoformat(job["finished_at"]).timestamp()
    print(f"webhook arrived {latency:.2f} s after the job finished")
    assert latency < 10  # sent right away, not left to the dispatcher's five-minute lease
    # data is the job record GET /v1/jobs/{id} returns, with its own fresh download URL.
    record = client.get(accepted["status_url"]).json()
    for volatile in ("url", "expires_at"):
        del record["result"][volatile]
    download_url = event["data"]["result"].pop("url")
    del event["data"]["result"]["expires_at"]
    assert event["data"] == record
    assert client.get(download_url).status_code == 200

    log = wait_for_delivery(client, base, job["id"], "delivered")
    assert log["webhook_id"] == request.headers["webhook-id"]
    assert log["event"] == "job.succeeded" and log["next_attempt_at"] is None
    [attempt] = log["attempts"]
    assert attempt["status"] == 200 and attempt["outcome"] == "delivered"
    assert attempt["duration_ms"] >= 0 and attempt["at"]


def test_503_503_200_gets_three_attempts_with_one_webhook_id(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    with WebhookReceiver([Reply(503), Reply(503), Reply(200)]) as receiver:
        accepted = submit(client, base, url=page_server.url("/status/404"),
                          webhook_url=receiver.url())
        job = wait_for_job(client, accepted["status_url"])
        assert job["status"] == "failed"
        requests = receiver.wait_for(3)
        log = wait_for_delivery(client, base, job["id"], "delivered")
    assert {r.headers["webhook-id"] for r in requests} == {f"msg_{job['id']}_job_failed"}
    assert all(Webhook(NEW_SECRET).verify(r.body, r.headers)["type"] == "job.failed"
               for r in requests)
    assert [(a["status"], a["outcome"]) for a in log["attempts"]] == [
        (503, "retrying"), (503, "retrying"), (200, "delivered")]
    assert len(receiver.received) == 3


def test_410_disables_the_endpoint_until_a_redelivery(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    with WebhookReceiver([Reply(410)]) as receiver:
        first = submit(client, base, url=page_server.url("/index.html"), webhook_url=receiver.url())
        log = wait_for_delivery(client, base, first["id"], "disabled")
        assert [a["status"] for a in log["attempts"]] == [410]
        second = submit(client, base, url=page_server.url("/index.html"), webhook_url=receiver.url())
        log = wait_for_delivery(client, base, second["id"], "disabled")
        assert log["attempts"][0]["status"] is None and "410" in log["attempts"][0]["error"]
        assert len(receiver.received) == 1  # nothing more went to the disabled endpoint

        again = client.post(f"{base}/v1/jobs/{second['id']}/deliveries/redeliver")
        assert again.status_code == 202, again.text
        assert again.json()["state"] == "scheduled"
        log = wait_for_delivery(client, base, second["id"], "delivered")
        request = receiver.wait_for(2)[1]
    assert request.headers["webhook-id"] == f"msg_{second['id']}_job_succeeded"
    assert [(a["round"], a["outcome"]) for a in log["attempts"]] == [
        (0, "disabled"), (1, "delivered")]


def test_an_endpoint_that_never_answers_is_retried_per_schedule_then_failed(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    with WebhookReceiver(default=Reply(hang=True)) as receiver:
        accepted = submit(client, base, url=page_server.url("/index.html"),
                          webhook_url=receiver.url())
        log = wait_for_delivery(client, base, accepted["id"], "failed", timeout=40)
        assert len(receiver.received) == 3
    assert log["next_attempt_at"] is None
    attempts = log["attempts"]
    assert [a["outcome"] for a in attempts] == ["retrying", "retrying", "failed"]
    assert all(a["status"] is None and a["error"].startswith("timeout") for a in attempts)
    assert all(1900 <= a["duration_ms"] < 4000 for a in attempts)
    assert attempts[0]["next_attempt_at"] is not None and attempts[2]["next_attempt_at"] is None
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    with WebhookReceiver(default=Reply(301, {"Location": "/elsewhere"})) as receiver:
        accepted = submit(client, base, url=page_server.url("/index.html"),
                          webhook_url=receiver.url("/hook"))
        log = wait_for_delivery(client, base, accepted["id"], "failed")
    assert [(a["status"], a["outcome"]) for a in log["attempts"]] == [
        (301, "retrying"), (301, "retrying"), (301, "failed")]
    assert "redirect not followed" in log["attempts"][0]["error"]
    assert {r.path for r in receiver.received} == {"/hook"}


def test_webhook_urls_are_checked_at_submit(base: str, client: httpx.Client,
                                            page_server: PageServer) -> None:
    for url, code in [("http://10.0.0.1/hook", "url_blocked"),
                      ("http://169.254.169.254/latest/meta-data", "url_blocked"),
                      ("http://[::ffff:192.168.0.1]/", "url_blocked"),
                      ("ftp://example.com/hook", "validation_error")]:
        response = client.post(f"{base}/v1/screenshots",
                               json={"url": page_server.url("/index.html"), "webhook_url": url})
        assert response.status_code == 422, (url, response.text)
        body = response.json()
        assert body["error"] == code and body["details"][0]["field"] == "webhook_url", body
        assert "webhook_url" in body["message"]


def test_deliveries_of_a_job_without_webhook(base: str, client: httpx.Client,
                                             page_server: PageServer) -> None:
    accepted = submit(client, base, url=page_server.url("/index.html"))
    log = client.get(f"{base}/v1/jobs/{accepted['id']}/deliveries").json()
    assert log == {"job_id": accepted["id"], "webhook_url": None, "event": None,
                   "webhook_id": None, "state": "none", "next_attempt_at": None, "attempts": []}
    redeliver = client.post(f"{base}/v1/jobs/{accepted['id']}/deliveries/redeliver")
    assert redeliver.status_code == 409 and redeliver.json()["error"] == "no_webhook"
    missing = client.get(f"{base}/v1/jobs/{'0' * 32}/deliveries")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_a_dead_endpoint_costs_captures_nothing(
    processes: ProcessFactory, page_server: PageServer
) -> None:
    """`shotline worker` (both queues, one capture process, one delivery slot) against an
    endpoint that holds every request for up to 60 s: captures finish at their own pace."""
    env = {**WEBHOOK_ENV, "SHOTLINE_WEBHOOK_TIMEOUT_SECONDS": "60",
           "SHOTLINE_WEBHOOK_CONCURRENCY": "1"}
    base = processes.api(**env)
    worker, log_path = processes._spawn("shotline-worker", python_command(
        "-m", "shotline.cli", "worker", "--concurrency", "1"), {**env, "SHOTLINE_PUBLIC_BASE_URL": base})
    deadline = time.monotonic() + 60
    while log_path.read_bytes().count(b"ready.") < 2:  # the capture and the webhook worker
        assert worker.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.1)
    with WebhookReceiver(default=Reply(hang=True)) as receiver, httpx.Client(timeout=30) as client:
        started = time.monotonic()
        jobs = [submit(client, base, url=page_server.url("/index.html"), webhook_url=receiver.url())
                for _ in range(3)]
        finished = [wait_for_job(client, job["status_url"]) for job in jobs]
        elapsed = time.monotonic() - started
        assert all(job["status"] == "succeeded" for job in finished)
        receiver.wait_for(1)
        # Had deliveries shared the capture process, each hung webhook would hold it for 60 s.
        print(f"3 captures with a dead webhook endpoint: {elapsed:.1f} s")
        assert elapsed < 45, elapsed
        assert not receiver.release.is_set()  # every request so far is still unanswered
        receiver.release.set()
        for job in jobs:
            wait_for_delivery(client, base, job["id"], "delivered", timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0


def test_retry_state_survives_a_webhook_worker_restart(
    processes: ProcessFactory, redis_url: str
) -> None:
    env = {**WEBHOOK_ENV, "SHOTLINE_WEBHOOK_RETRY_SCHEDULE": "4"}
    with WebhookReceiver([Reply(503)]) as receiver:
        job = finished_job(receiver.url())

        async def create() -> None:
            redis = create_redis(redis_url)
            try:
                await StatusStore(redis, ttl_seconds=600).create(job)
                await open_delivery(DeliveryStore(redis, ttl_seconds=600), job, due=time.time())
            finally:
                await redis.aclose()

        asyncio.run(create())
        first, _ = processes.webhook_worker(**env)  # its dispatcher finds the due delivery
        receiver.wait_for(1)
        wait_for_attempts(redis_url, job.id, 1)  # the attempt has recorded its outcome
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        due = sync_redis.Redis.from_url(redis_url).zscore(WEBHOOK_DUE_KEY, job.id)
        assert due is not None and due > time.time() - 1  # the retry waits in Redis

        processes.webhook_worker(**env)
        second = receiver.wait_for(2, timeout=30)[1]
        wait_for_attempts(redis_url, job.id, 2)  # and the worker has recorded its outcome
    assert second.headers["webhook-id"] == receiver.received[0].headers["webhook-id"]
    assert second.at - receiver.received[0].at >= 3.2  # 4 s ± 20 %, not sooner
    assert sync_redis.Redis.from_url(redis_url).zscore(WEBHOOK_DUE_KEY, job.id) is None

"""The ``batch.completed`` webhook end to end on real parts: API, capture and webhook Celery
workers, Redis, Chromium against local pages, two API keys and receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from shared.apikeys import KeyStore, NewKey
from shared.connections import create_redis
from shared.fair_queue import FairQueue
from shared.status_store import StatusStore
from shotline.webhooks import generate_secret, verify
from tests.conftest import ProcessFactory
from tests.polling import assert_error, submit
from tests.servers import PageServer
from tests.webhook_receiver import Reply, WebhookReceiver
from worker.dispatcher import Dispatcher

WEBHOOK_ENV = {
    "SHOTLINE_WEBHOOK_RETRY_SCHEDULE": "1,1",
    "SHOTLINE_WEBHOOK_TIMEOUT_SECONDS": "2",
    "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "1",
}
#: Refused by the URL policy (only 127.0.0.0/8 is allowed): its job fails at submit.
BLOCKED_URL = "http://10.0.0.1/"


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    """An API, a capture worker and a webhook worker sharing the webhook settings."""
    base = module_processes.api(**WEBHOOK_ENV)
    module_processes.worker(**WEBHOOK_ENV)
    module_processes.webhook_worker(SHOTLINE_PUBLIC_BASE_URL=base, **WEBHOOK_ENV)
    return base


@pytest.fixture(scope="module")
def keys(module_env: dict[str, str]) -> tuple[NewKey, NewKey]:
    """Two API keys (each with its own webhook secret), created straight in Redis."""

    async def create() -> tuple[NewKey, NewKey]:
        client = create_redis(module_env["SHOTLINE_REDIS_URL"])
        try:
            store = KeyStore(client)
            return await store.create("alice"), await store.create("bob")
        finally:
            await client.aclose()

    return asyncio.run(create())


@pytest.fixture
def alice(keys: tuple[NewKey, NewKey]) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {keys[0].key}"}) as client:
        yield client


@pytest.fixture
def bob(keys: tuple[NewKey, NewKey]) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {keys[1].key}"}) as client:
        yield client


def submit_batch(client: httpx.Client, base: str, urls: list[str], **body: Any) -> dict[str, Any]:
    response = client.post(f"{base}/v1/batches", json={"urls": urls, **body})
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def wait_for_batch(client: httpx.Client, status_url: str, *, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not (batch := client.get(status_url).raise_for_status().json())["done"]:
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    return batch  # type: ignore[no-any-return]


def wait_for_delivery(client: httpx.Client, base: str, batch_id: str, state: str,
                      *, timeout: float = 30) -> dict[str, Any]:
    """Poll ``GET /v1/batches/{id}/deliveries`` until its state is ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        log: dict[str, Any] = client.get(f"{base}/v1/batches/{batch_id}/deliveries"
                                         ).raise_for_status().json()
        if log["state"] == state:
            return log
        assert time.monotonic() < deadline, f"delivery still {log['state']} after {timeout}s: {log}"
        time.sleep(0.2)


def test_one_signed_batch_completed_after_every_job_ended(
    base: str, alice: httpx.Client, keys: tuple[NewKey, NewKey], page_server: PageServer
) -> None:
    urls = [page_server.url("/index.html"), BLOCKED_URL, page_server.url("/slow?ms=1500")]
    with WebhookReceiver() as receiver:
        accepted = submit_batch(alice, base, urls, webhook_url=receiver.url("/batches"))
        [request] = receiver.wait_for(1)
        batch = wait_for_batch(alice, accepted["status_url"])
        log = wait_for_delivery(alice, base, accepted["id"], "delivered")
        time.sleep(1.5)  # room for a duplicate to arrive, were one sent
        received = list(receiver.received)
    assert len(received) == 1

    # Signed with alice's key's secret; a stock Standard Webhooks library agrees.
    secret = keys[0].record.webhook_secret
    event = verify(request.body, request.headers, secret)
    assert Webhook(secret).verify(request.body, request.headers) == event
    assert request.headers["webhook-id"] == f"msg_{accepted['id']}_batch_completed"
    assert event["type"] == "batch.completed"

    # Sent after the last job ended, and its data is GET /v1/batches/{id}.
    assert event["data"] == batch
    assert batch["counts"] == {"queued": 0, "running": 0, "succeeded": 2, "failed": 1}
    assert batch["jobs"][1]["error"]["code"] == "url_blocked"
    ends = [datetime.fromisoformat(alice.get(job["status_url"]).json()["finished_at"])
            for job in batch["jobs"]]
    assert event["timestamp"] == batch["finished_at"].replace("+00:00", "Z")
    latency = request.at - max(ends).timestamp()
    print(f"batch.completed arrived {latency:.2f} s after the batch's last job finished")
    assert 0 <= latency < 10  # sent right away, not left to the dispatcher's five-minute lease

    assert log["batch_id"] == accepted["id"] and log["event"] == "batch.completed"
    assert log["webhook_id"] == request.headers["webhook-id"]
    assert [(a["status"], a["outcome"]) for a in log["attempts"]] == [(200, "delivered")]


def test_503_then_200_is_two_attempts_with_one_webhook_id(
    base: str, alice: httpx.Client, page_server: PageServer
) -> None:
    with WebhookReceiver([Reply(503), Reply(200)]) as receiver:
        accepted = submit_batch(alice, base, [page_server.url("/index.html")],
                                webhook_url=receiver.url())
        requests = receiver.wait_for(2)
        log = wait_for_delivery(alice, base, accepted["id"], "delivered")
    assert {r.headers["webhook-id"] for r in requests} == {f"msg_{accepted['id']}_batch_completed"}
    assert [(a["status"], a["outcome"]) for a in log["attempts"]] == [
        (503, "retrying"), (200, "delivered")]
    assert log["next_attempt_at"] is None


def test_deliveries_belong_to_the_batch_owner_and_redeliver_after_the_end(
    base: str, alice: httpx.Client, bob: httpx.Client, page_server: PageServer
) -> None:
    with WebhookReceiver() as receiver:
        running = submit_batch(alice, base, [page_server.url("/slow?ms=3000")],
                               webhook_url=receiver.url())
        batch_id = running["id"]
        # Another key: the batch and its deliveries do not exist.
        for response in (bob.get(f"{base}/v1/batches/{batch_id}/deliveries"),
                         bob.post(f"{base}/v1/batches/{batch_id}/deliveries/redeliver")):
            assert_error(response, 404, "not_found")
        # The owner, before the batch ends: waiting, and nothing to send again yet.
        assert alice.get(f"{base}/v1/batches/{batch_id}/deliveries").json()["state"] == "waiting"
        assert_error(alice.post(f"{base}/v1/batches/{batch_id}/deliveries/redeliver"), 409,
                     "batch_not_finished")

        wait_for_delivery(alice, base, batch_id, "delivered")
        again = alice.post(f"{base}/v1/batches/{batch_id}/deliveries/redeliver")
        assert again.status_code == 202, again.text
        assert again.json()["batch_id"] == batch_id
        requests = receiver.wait_for(2)
        log = wait_for_delivery(alice, base, batch_id, "delivered")
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
    assert [(a["round"], a["status"]) for a in log["attempts"]] == [(0, 200), (1, 200)]

    # Without a webhook_url: nothing to list, nothing to send again.
    silent = submit_batch(alice, base, [page_server.url("/index.html")])
    wait_for_batch(alice, silent["status_url"])
    assert alice.get(f"{base}/v1/batches/{silent['id']}/deliveries").json()["state"] == "none"
    assert_error(alice.post(f"{base}/v1/batches/{silent['id']}/deliveries/redeliver"), 409,
                 "no_webhook")


def test_a_batch_webhook_url_is_checked_at_submit(base: str, alice: httpx.Client,
                                                  page_server: PageServer) -> None:
    response = alice.post(f"{base}/v1/batches", json={
        "urls": [page_server.url("/index.html")], "webhook_url": "http://10.0.0.2/hook"})
    assert_error(response, 422, "url_blocked")


@pytest.mark.slow
def test_jobs_the_sweeper_fails_as_lost_send_job_failed_and_batch_completed(
    processes: ProcessFactory, page_server: PageServer, redis_url: str
) -> None:
    """The sweeper settles lost jobs through the same Completion: their ``job.failed`` and
    their batch's ``batch.completed`` go out. A dispatcher releases both jobs but their
    messages are lost (no capture worker ever takes them), so they stay queued until the
    sweeper (in the webhook worker) gives up on them: one re-enqueue after the queued
    deadline (10 s, the least allowed), then failed as lost at the next one. (A worker
    killed mid-capture reaches the same verdict only after its running deadline, 60 s +
    grace; a job still waiting its turn in the fair queue is never lost: it has no deadline.)
    """
    secret = generate_secret()
    env = {**WEBHOOK_ENV, "SHOTLINE_WEBHOOK_SECRET": secret,
           "SHOTLINE_QUEUED_DEADLINE_SECONDS": "10", "SHOTLINE_SWEEP_MAX_RECOVERIES": "1",
           "SHOTLINE_SWEEP_INTERVAL_SECONDS": "0.5"}
    base = processes.api(**env)
    processes.webhook_worker(SHOTLINE_PUBLIC_BASE_URL=base, **env)
    with httpx.Client(timeout=30) as client, WebhookReceiver() as receiver:
        job = submit(client, base, url=page_server.url("/index.html"),
                     webhook_url=receiver.url("/job"))
        batch = submit_batch(client, base, [page_server.url("/index.html")],
                             webhook_url=receiver.url("/batch"))
        assert sorted(asyncio.run(_release_and_lose(redis_url))) == sorted(
            [job["id"], *batch["job_ids"]])
        received = receiver.wait_for(2, timeout=60)
        time.sleep(1)
        assert len(receiver.received) == 2
        events = {r.path: verify(r.body, r.headers, secret) for r in received}
        assert set(events) == {"/job", "/batch"}
        assert events["/job"]["type"] == "job.failed"
        assert events["/job"]["data"] == client.get(job["status_url"]).json()
        assert events["/job"]["data"]["id"] == job["id"]
        assert events["/job"]["data"]["error"]["code"] == "lost"
        assert events["/batch"]["type"] == "batch.completed"
        assert events["/batch"]["data"] == client.get(batch["status_url"]).json()
        assert events["/batch"]["data"]["counts"]["failed"] == 1
        assert events["/batch"]["data"]["jobs"][0]["error"]["code"] == "lost"


async def _release_and_lose(redis_url: str) -> list[str]:
    """One dispatcher pass whose publications are lost: the released jobs' queued deadline
    starts, but no task will ever run them."""
    redis = create_redis(redis_url)
    try:
        store = StatusStore(redis, ttl_seconds=600, queued_deadline=10)
        fair = FairQueue(redis, store, ahead=8, stale_after=600)
        return await Dispatcher(fair, lambda releases: [r.job_id for r in releases]).dispatch()
    finally:
        await redis.aclose()

"""Fair scheduling end to end: real Redis, a real API and a real one-slot Celery worker whose
dispatcher releases captures round-robin between API keys; SnapAPI's stand-in is the engine,
slowed down so that a backlog builds up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.apikeys import KeyStore, NewKey
from shared.connections import create_redis
from shared.fair_queue import FairQueue
from shared.queue import enqueue_capture, make_celery
from shared.settings import Settings
from shared.status_store import StatusStore
from tests.conftest import ProcessFactory
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.polling import submit, wait_for_job

SNAP_KEY = "sk_test_fairness"
FLOOD = 30


@pytest.fixture
def snap() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key=SNAP_KEY) as stand_in:
        yield stand_in


@pytest.fixture
def engine_env(snap: SnapApiStandIn) -> dict[str, str]:
    return {"SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": SNAP_KEY,
            "SHOTLINE_SNAPAPI_BASE_URL": snap.base_url}


def new_key(redis_url: str, name: str) -> NewKey:
    async def create() -> NewKey:
        client = create_redis(redis_url)
        try:
            return await KeyStore(client).create(name)
        finally:
            await client.aclose()

    return asyncio.run(create())


def test_a_key_with_two_jobs_is_not_starved_by_another_keys_batch(
    processes: ProcessFactory, engine_env: dict[str, str], snap: SnapApiStandIn, redis_url: str
) -> None:
    snap.delay = 0.2  # slow captures: the batch builds a backlog on the single slot
    processes.worker(concurrency=1, **engine_env)
    base = processes.api(**engine_env)
    flood_key, small_key = new_key(redis_url, "flood"), new_key(redis_url, "small")
    with httpx.Client(timeout=30, headers={"X-API-Key": flood_key.key}) as flood, \
            httpx.Client(timeout=30, headers={"X-API-Key": small_key.key}) as small:
        urls = [f"http://127.0.0.1:9/flood-{i}" for i in range(FLOOD)]
        response = flood.post(f"{base}/v1/batches", json={"urls": urls})
        assert response.status_code == 202, response.text
        flood_ids = [job["id"] for job in flood.get(response.json()["status_url"]).json()["jobs"]]
        small_jobs = [submit(small, base, url=f"http://127.0.0.1:9/small-{i}") for i in range(2)]
        small_done = [wait_for_job(small, job["status_url"]) for job in small_jobs]
        flood_done = [wait_for_job(flood, f"{base}/v1/jobs/{job_id}", timeout=120)
                      for job_id in flood_ids]
    assert all(job["status"] == "succeeded" for job in small_done + flood_done)
    order = [job["id"] for job in sorted(small_done + flood_done, key=lambda j: j["started_at"])]
    positions = [order.index(job["id"]) for job in small_done]
    # Behind at most SHOTLINE_DISPATCH_AHEAD (8) released flood jobs, the one running and one
    # flood job per turn, not behind all 30 (first-in first-out would give 30 and 31).
    assert max(positions) <= 8 + 1 + 3, (positions, order)
    assert sum(1 for job_id in order[max(positions):] if job_id in flood_ids) >= FLOOD - 12
    assert len(snap.requests) == FLOOD + 2


def test_a_claim_whose_dispatcher_died_is_published_after_its_lease(
    processes: ProcessFactory, engine_env: dict[str, str], snap: SnapApiStandIn,
    make_settings: Any,
) -> None:
    settings: Settings = make_settings(**{k.removeprefix("SHOTLINE_").lower(): v
                                          for k, v in engine_env.items()})
    base = processes.api(**engine_env)
    with httpx.Client(timeout=30) as client:
        accepted = submit(client, base, url="http://127.0.0.1:9/orphan")

        async def claim_and_die() -> list[str]:
            # A dispatcher claims the job, then dies before publishing it (lease 0: over).
            redis = create_redis(settings.redis_url)
            try:
                store = StatusStore(redis, ttl_seconds=600)
                fair = FairQueue(redis, store, ahead=8, stale_after=600, lease_seconds=0)
                return [release.job_id for release in await fair.claim()]
            finally:
                await redis.aclose()

        assert asyncio.run(claim_and_die()) == [accepted["id"]]
        # No task exists; a worker's dispatcher finds the expired claim and publishes it.
        processes.worker(concurrency=1, **engine_env)
        done = wait_for_job(client, accepted["status_url"])
        assert done["status"] == "succeeded" and done["attempts"] == 1, done

        # A duplicate publication of a finished job is harmless: its run does nothing.
        producer = make_celery(settings)
        try:
            enqueue_capture(producer, accepted["id"], request_id=None)
        finally:
            producer.close()
        after = wait_for_job(client, submit(client, base, url="http://127.0.0.1:9/next")["status_url"])
        assert after["status"] == "succeeded"
        again = client.get(accepted["status_url"]).json()
        assert (again["status"], again["attempts"], again["finished_at"]) == (
            "succeeded", 1, done["finished_at"])
    assert [request.json["url"] for request in snap.requests] == [
        "http://127.0.0.1:9/orphan", "http://127.0.0.1:9/next"]

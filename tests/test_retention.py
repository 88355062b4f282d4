"""Deleting jobs (``DELETE /v1/jobs/{id}``) and the retention period, on real parts: a real
Celery worker with Chromium, the API under uvicorn, real Redis, local files and moto's S3
server over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.apikeys import KeyStore, NewKey
from shared.connections import create_redis
from shared.constants import CACHE_PREFIX, RETENTION_DUE_KEY
from shared.errors import StorageError
from shared.jobs import CaptureOptions, Job, JobStatus, StoredResult
from shared.retention import (
    RetentionIndex,
    RetentionSweeper,
    StoredObjects,
    delete_objects,
    owned_objects,
)
from shared.status_store import StatusStore
from shared.storage import LocalStorage
from shared.storage.destinations import StorageRouter
from shotline.client import ApiNotFound, Client
from tests.conftest import ProcessFactory
from tests.polling import assert_error, wait_for_job
from tests.servers import PageServer

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class Stack:
    base: str
    redis_url: str
    data_dir: Path

    def key(self, name: str, *, retention: int | None = None) -> NewKey:
        async def create() -> NewKey:
            client = create_redis(self.redis_url)
            try:
                store = KeyStore(client)
                new = await store.create(name)
                if retention is not None:
                    await store.set_retention(new.record.id, retention)
                return new
            finally:
                await client.aclose()

        return asyncio.run(create())


def client_for(key: NewKey) -> httpx.Client:
    return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key.key}"})


def capture(client: httpx.Client, base: str, page: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"{base}/v1/screenshots",
                           json={"url": page, "width": 320, "height": 240, **body})
    assert response.status_code in (200, 202), response.text  # 200: a cache hit
    job = wait_for_job(client, response.json()["status_url"])
    assert job["status"] == "succeeded", job
    return job


def wait_until_cached(redis_url: str, job_id: str) -> None:
    """Wait until the result cache indexes ``job_id`` (its listener runs just after the job
    is marked succeeded, so a client can see it succeeded a moment before)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 10
    try:
        while not any(job_id.encode() in (client.get(key) or b"")
                      for key in client.scan_iter(f"{CACHE_PREFIX}*")):
            assert time.monotonic() < deadline, f"{job_id} never reached the result cache"
            time.sleep(0.05)
    finally:
        client.close()


def stored_files(data_dir: Path, job_id: str) -> list[str]:
    root = data_dir / "files"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(f"{job_id}*"))


@pytest.fixture(scope="module")
def local_stack(module_processes: ProcessFactory, module_env: dict[str, str]) -> Stack:
    env = {"SHOTLINE_RETENTION_SWEEP_INTERVAL_SECONDS": "0.5",
           "SHOTLINE_CACHE_TTL_SECONDS": "3600"}
    module_processes.worker(concurrency=1, **env)
    return Stack(base=module_processes.api(**env), redis_url=module_env["SHOTLINE_REDIS_URL"],
                 data_dir=Path(module_env["SHOTLINE_DATA_DIR"]))


def test_delete_removes_every_file_and_the_record_owner_only_and_idempotent(
    local_stack: Stack, page_server: PageServer,
) -> None:
    owner, other = local_stack.key("owner"), local_stack.key("other")
    base = local_stack.base
    with client_for(owner) as client, client_for(other) as stranger:
        job = capture(client, base, page_server.url("/index.html"), thumbnail_width=100,
                      fresh=True)
        job_id = job["id"]
        # Another kind of stored file under the job's prefix (content outputs, a poster):
        # deletion is generic, not a list of known kinds.
        extra = local_stack.data_dir / "files" / "results" / f"{job_id}.content.md"
        extra.write_text("# content")
        assert stored_files(local_stack.data_dir, job_id) == [
            f"results/{job_id}.content.md", f"results/{job_id}.png"]
        assert client.get(job["result"]["url"]).status_code == 200

        assert_error(stranger.delete(f"{base}/v1/jobs/{job_id}"), 404, "not_found")
        with Client(base, api_key=other.key) as sdk, pytest.raises(ApiNotFound):
            sdk.delete(job_id)
        assert len(stored_files(local_stack.data_dir, job_id)) == 2

        deleted = client.delete(f"{base}/v1/jobs/{job_id}")
        assert deleted.status_code == 204 and deleted.content == b""
        assert stored_files(local_stack.data_dir, job_id) == []
        assert_error(client.get(f"{base}/v1/jobs/{job_id}"), 404, "not_found")
        assert client.get(job["result"]["url"]).status_code == 404
        assert job_id not in [j["id"] for j in client.get(f"{base}/v1/jobs").json()["jobs"]]
        # Again: a no-op.
        assert client.delete(f"{base}/v1/jobs/{job_id}").status_code == 204


def test_the_result_cache_never_hands_out_a_deleted_result(
    local_stack: Stack, page_server: PageServer,
) -> None:
    owner = local_stack.key("cache-owner")
    base = local_stack.base
    page = page_server.url(f"/index.html?cache={uuid.uuid4().hex}")
    with client_for(owner) as client:
        first = capture(client, base, page)
        wait_until_cached(local_stack.redis_url, first["id"])
        copy = capture(client, base, page)
        assert copy["cached"] is True and copy["id"] != first["id"]
        assert client.get(f"{base}/v1/jobs/{copy['id']}/result").status_code == 302

        assert client.delete(f"{base}/v1/jobs/{first['id']}").status_code == 204
        # The copy shares the deleted capture's files: it says so instead of a broken link.
        view = client.get(f"{base}/v1/jobs/{copy['id']}").json()
        assert view["result"] is None and view["result_expired_at"] is not None
        assert_error(client.get(f"{base}/v1/jobs/{copy['id']}/result"), 410, "gone")
        # The same request again captures anew.
        again = capture(client, base, page)
        assert again["cached"] is False
        wait_until_cached(local_stack.redis_url, again["id"])
        assert stored_files(local_stack.data_dir, again["id"]) == [f"results/{again['id']}.png"]
        # Deleting a copy removes its record only: the capture it shared is not its own.
        copy_of_again = capture(client, base, page)
        assert copy_of_again["cached"] is True
        assert client.delete(f"{base}/v1/jobs/{copy_of_again['id']}").status_code == 204
        assert client.get(f"{base}/v1/jobs/{again['id']}/result").status_code == 302
        assert stored_files(local_stack.data_dir, again["id"]) == [f"results/{again['id']}.png"]


def test_retention_deletes_a_keys_results_and_the_job_says_410_gone(
    local_stack: Stack, page_server: PageServer,
) -> None:
    short, kept = local_stack.key("short", retention=5), local_stack.key("kept")
    base = local_stack.base
    page = page_server.url(f"/index.html?retention={uuid.uuid4().hex}")
    with client_for(short) as client, client_for(kept) as keeper:
        job = capture(client, base, page)
        assert stored_files(local_stack.data_dir, job["id"])
        other = capture(keeper, base, page)
        deadline = time.monotonic() + 20
        while stored_files(local_stack.data_dir, job["id"]):
            assert time.monotonic() < deadline, "the retention sweep did not delete the result"
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while (view := client.get(f"{base}/v1/jobs/{job['id']}").json())["result"] is not None:
            assert time.monotonic() < deadline, view
            time.sleep(0.1)
        assert view["status"] == "succeeded" and view["result_expired_at"] is not None
        body = assert_error(client.get(f"{base}/v1/jobs/{job['id']}/result"), 410, "gone")
        assert "retention" in body["message"]
        # An expired capture is no cache hit.
        assert capture(client, base, page)["cached"] is False
        # The key without a retention keeps its result.
        assert stored_files(local_stack.data_dir, other["id"]) == [f"results/{other['id']}.png"]
        assert keeper.get(f"{base}/v1/jobs/{other['id']}/result").status_code == 302
        # Deleting an expired job still works.
        assert client.delete(f"{base}/v1/jobs/{job['id']}").status_code == 204


@pytest.mark.anyio
async def test_a_sweep_deletes_old_results_and_leaves_young_ones(
    redis_url: str, tmp_path: Path,
) -> None:
    client = create_redis(redis_url)
    storage = LocalStorage(tmp_path / "files", "http://shotline.test", b"key")
    store = StatusStore(client, ttl_seconds=3600)
    index = RetentionIndex(client)
    now = time.time()
    jobs = {}
    for name, finished in (("old", now - 100), ("young", now - 10)):
        job_id = uuid.uuid4().hex
        key = f"results/{job_id}.png"
        await storage.put(key, b"png", content_type="image/png")
        job = Job(id=job_id, status=JobStatus.succeeded, created_at=datetime.now(UTC),
                  options=CaptureOptions(url="http://example.com"),
                  result=StoredResult(key=key, content_type="image/png", bytes=3, sha256="0"))
        await store.create(job)
        objects = owned_objects(job)
        assert objects is not None and objects.keys == (key,)
        await index.schedule(job_id, objects, at=finished + 60)
        jobs[name] = job
    sweeper = RetentionSweeper(client, StorageRouter(storage), interval=1)
    try:
        assert await sweeper.sweep(now=now) == [jobs["old"].id]
        assert not storage.path_for(f"results/{jobs['old'].id}.png").exists()
        assert (await store.get(jobs["old"].id)).result_expired_at is not None
        assert storage.path_for(f"results/{jobs['young'].id}.png").exists()
        assert (await store.get(jobs["young"].id)).result_expired_at is None
        assert await client.zcard(RETENTION_DUE_KEY) == 1
        # Nothing is due twice.
        assert await sweeper.sweep(now=now) == []
        assert await sweeper.sweep(now=now + 60) == [jobs["young"].id]
    finally:
        await client.aclose()


@pytest.fixture
def s3_stack(processes: ProcessFactory, moto_endpoint: str, s3_admin: Any,
             shotline_env: dict[str, str]) -> Iterator[tuple[Stack, str]]:
    bucket = f"shotline-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=bucket)
    env = {"SHOTLINE_STORAGE": "s3", "SHOTLINE_S3_BUCKET": bucket,
           "SHOTLINE_S3_ENDPOINT_URL": moto_endpoint, "SHOTLINE_S3_REGION": "us-east-1",
           **AWS_ENV}
    processes.worker(concurrency=1, **env)
    yield Stack(base=processes.api(**env), redis_url=shotline_env["SHOTLINE_REDIS_URL"],
                data_dir=Path(shotline_env["SHOTLINE_DATA_DIR"])), bucket


def test_delete_on_s3_removes_every_object(
    s3_stack: tuple[Stack, str], s3_admin: Any, page_server: PageServer,
) -> None:
    stack, bucket = s3_stack
    owner = stack.key("s3-owner")
    with client_for(owner) as client:
        job = capture(client, stack.base, page_server.url("/index.html"), format="jpeg",
                      thumbnail_width=64)
        job_id = job["id"]
        s3_admin.put_object(Bucket=bucket, Key=f"results/{job_id}.content.txt", Body=b"text")
        s3_admin.put_object(Bucket=bucket, Key="results/someone-else.png", Body=b"png")

        def keys() -> list[str]:
            listed = s3_admin.list_objects_v2(Bucket=bucket, Prefix="results/")
            return sorted(item["Key"] for item in listed.get("Contents", []))

        assert keys() == [f"results/{job_id}.content.txt", f"results/{job_id}.jpeg",
                          "results/someone-else.png"]
        with Client(stack.base, api_key=owner.key) as sdk:
            sdk.delete(job_id)
        assert keys() == ["results/someone-else.png"]
        assert client.get(job["result"]["url"]).status_code == 404
        assert client.delete(f"{stack.base}/v1/jobs/{job_id}").status_code == 204


def test_delete_refuses_a_job_still_running(
    local_stack: Stack, page_server: PageServer,
) -> None:
    owner = local_stack.key("busy")
    with client_for(owner) as client:
        accepted = client.post(f"{local_stack.base}/v1/screenshots", json={
            "url": page_server.url("/slow?ms=3000"), "fresh": True}).json()
        assert_error(client.delete(f"{local_stack.base}/v1/jobs/{accepted['id']}"), 409,
                     "job_not_finished")
        wait_for_job(client, accepted["status_url"])
        assert client.delete(f"{local_stack.base}/v1/jobs/{accepted['id']}").status_code == 204
    assert redis.Redis.from_url(local_stack.redis_url).exists(f"shotline:job:{accepted['id']}") == 0


class _NoListing(LocalStorage):
    """Local files whose listing is refused, like a bucket granting no ListBucket."""

    async def list_keys(self, prefix: str) -> list[str]:
        raise StorageError(f"listing {prefix!r} is not allowed")


@pytest.mark.anyio
async def test_objects_named_on_the_record_go_when_listing_is_refused(tmp_path: Path) -> None:
    storage = _NoListing(tmp_path / "files", "http://shotline.test", b"key")
    await storage.put("results/abc.png", b"png", content_type="image/png")
    await storage.put("results/abc.poster.jpeg", b"jpeg", content_type="image/jpeg")
    objects = StoredObjects(keys=("results/abc.png", "results/abc.poster.jpeg"),
                            prefix="results/abc")
    assert await delete_objects(StorageRouter(storage), objects) == 2
    assert not list((tmp_path / "files").rglob("abc*"))

"""Error messages name the field and the fix in the user's terms: bodies that are not JSON,
hosts that do not resolve (not "blocked"), the result of a failed job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.connections import create_redis
from shared.jobs import CaptureOptions, Job, JobStatus, new_job_id, utcnow
from shared.status_store import StatusStore
from shared.storage.local import LocalStorage
from tests.conftest import ProcessFactory
from tests.polling import assert_error, submit, wait_for_job
from tests.servers import LOOPBACK_POLICY, PageServer
from worker.pipeline import PipelineDeps, run_capture_job

#: A name that never resolves (RFC 2606 reserves .invalid).
UNRESOLVABLE = "http://no-such-host.invalid/"


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    module_processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    return module_processes.api()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _body_error(response: httpx.Response) -> dict[str, Any]:
    error = assert_error(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["body"], error
    assert "application/json" in error["message"] or "JSON object" in error["message"]
    return error


def test_invalid_json_says_so_and_where(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/screenshots", content=b'{"url": "https://example.com",}',
                           headers={"Content-Type": "application/json"})
    error = _body_error(response)
    assert error["message"].startswith("the request body is not valid JSON (")
    assert "at character 30" in error["message"], error  # a position, not a field "30"


def test_a_form_encoded_body_is_told_to_send_json(base: str, client: httpx.Client) -> None:
    # What `curl -d '{...}'` without a Content-Type sends.
    response = client.post(f"{base}/v1/screenshots", content=b'{"url": "https://example.com"}',
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    error = _body_error(response)
    assert "application/x-www-form-urlencoded, not JSON" in error["message"], error
    assert "-H 'Content-Type: application/json'" in error["message"]


def test_an_empty_body_is_called_empty(base: str, client: httpx.Client) -> None:
    error = _body_error(client.post(f"{base}/v1/screenshots",
                                    headers={"Content-Type": "application/json"}))
    assert error["message"].startswith("the request body is empty"), error


def test_a_json_array_is_not_an_object(base: str, client: httpx.Client) -> None:
    error = _body_error(client.post(f"{base}/v1/screenshots", json=["https://example.com"]))
    assert "not an array" in error["message"], error


def test_fields_are_still_named(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/screenshots", json={"url": "https://example.com",
                                                          "width": 5})
    error = assert_error(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["width"]


def test_an_unresolvable_host_is_not_called_blocked(base: str, client: httpx.Client) -> None:
    error = assert_error(client.post(f"{base}/v1/screenshots", json={"url": UNRESOLVABLE}),
                         422, "host_unresolvable")
    assert error["details"][0]["field"] == "url"
    assert "could not resolve host no-such-host.invalid" in error["message"]
    assert "check the URL for typos" in error["message"]


def test_the_result_of_a_failed_job_says_it_failed(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/status/404"))
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed"
    error = assert_error(client.get(f"{base}/v1/jobs/{job['id']}/result"), 409, "job_failed")
    assert error["message"].startswith(f"job {job['id']} failed (http_error: ")
    assert "is failed" not in error["message"]


def test_the_result_of_a_running_job_says_to_poll(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/slow?ms=3000"))
    error = assert_error(client.get(f"{base}/v1/jobs/{accepted['id']}/result"), 409,
                         "job_not_finished")
    assert f"poll GET /v1/jobs/{accepted['id']}" in error["message"], error
    wait_for_job(client, accepted["status_url"])


def test_a_host_that_stops_resolving_fails_the_job_as_unresolvable(
    redis_url: str, tmp_path: Path
) -> None:
    """The API saw the host resolve; by the time the worker runs it no longer does."""

    class NeverCalled:
        name = "chromium"

        async def capture(self, options: CaptureOptions, *, request_id: str | None = None) -> Any:
            raise AssertionError("the URL policy refuses first")

    async def scenario() -> Job:
        redis = create_redis(redis_url)
        try:
            store = StatusStore(redis, ttl_seconds=600)
            job = Job(id=new_job_id(), status=JobStatus.queued, created_at=utcnow(),
                      options=CaptureOptions(url=UNRESOLVABLE))
            await store.create(job)
            deps = PipelineDeps(
                store=store, engine=NeverCalled(),  # type: ignore[arg-type]
                storage=LocalStorage(tmp_path, "http://127.0.0.1", b"k"),
                policy=LOOPBACK_POLICY, max_attempts=3, max_result_bytes=1000,
            )
            outcome = await run_capture_job(job.id, deps)
            assert outcome.status is JobStatus.failed
            return await store.get(job.id)
        finally:
            await redis.aclose()

    failed = asyncio.run(scenario())
    assert failed.error is not None and failed.error.code == "host_unresolvable", failed
    assert failed.attempts == 1

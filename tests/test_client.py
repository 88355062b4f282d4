"""The Python client (shotline.client) and ``shotline submit`` against a live API and worker."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from shotline.client import AsyncClient, Backoff, Client
from shotline.errors import (
    ApiConflict,
    ApiError,
    ApiInvalidRequest,
    ApiNotFound,
    ApiUnavailable,
    JobFailed,
    JobWaitTimeout,
)
from shotline.models import Batch, JobStatus, ScreenshotRequest
from tests.conftest import ProcessFactory
from tests.servers import REPO_ROOT, PageServer, child_env, free_port, python_command


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    """One worker (one attempt per job) and an API for this module."""
    module_processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    return module_processes.api()


@pytest.fixture
def client(base: str) -> Iterator[Client]:
    with Client(base) as client:
        yield client


def _image(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


def test_capture_submits_waits_and_downloads(
    client: Client, page_server: PageServer, tmp_path: Path
) -> None:
    shot = client.capture(page_server.url("/index.html"), width=640, height=480)
    assert shot.job.status is JobStatus.succeeded
    assert shot.content_type == "image/png"
    assert _image(shot.content) == ("PNG", (640, 480))
    assert shot.job.result is not None and shot.job.result.bytes == len(shot.content)
    saved = shot.save(tmp_path / "shot.png")
    assert saved.read_bytes() == shot.content


def test_submit_get_wait_with_typed_models(client: Client, page_server: PageServer) -> None:
    request = ScreenshotRequest(url=page_server.url("/slow?ms=800"), format="jpeg", quality=60)
    accepted = client.submit(request)
    assert accepted.status is JobStatus.queued
    first = client.get(accepted)
    assert first.status in (JobStatus.queued, JobStatus.running)
    assert first.options.format.value == "jpeg" and first.options.quality == 60
    with pytest.raises(ApiConflict) as excinfo:
        client.download(first)
    assert excinfo.value.code == "job_not_finished"

    done = client.wait(accepted.id, timeout=30, backoff=Backoff(initial=0.05, maximum=0.5))
    assert done.status is JobStatus.succeeded and done.finished_at is not None
    assert _image(client.download(done.id))[0] == "JPEG"


def test_failed_job_raises_job_failed_with_the_record(
    client: Client, page_server: PageServer
) -> None:
    with pytest.raises(JobFailed) as excinfo:
        client.capture(page_server.url("/status/404"))
    failed = excinfo.value
    assert failed.error_code == "http_error"
    assert failed.job.status is JobStatus.failed and failed.job.error.status == 404
    assert failed.job.id in str(failed)


def test_wait_gives_up_after_its_timeout(client: Client, page_server: PageServer) -> None:
    accepted = client.submit(page_server.url("/slow?ms=1500"))
    with pytest.raises(JobWaitTimeout, match=accepted.id):
        client.wait(accepted, timeout=0.3)
    assert client.wait(accepted, timeout=30).status is JobStatus.succeeded


def test_api_errors_become_exceptions_with_code_message_and_request_id(
    client: Client, base: str
) -> None:
    with pytest.raises(ApiInvalidRequest) as invalid:
        client.submit("https://example.com", width=5, colour="red")
    error = invalid.value
    assert (error.status, error.code) == (422, "validation_error")
    assert error.request_id and len(error.request_id) >= 8
    assert {d["field"] for d in error.details or []} == {"width", "colour"}
    assert "width" in error.message and error.request_id in str(error)

    with pytest.raises(ApiInvalidRequest) as blocked:
        client.submit("http://169.254.169.254/latest/meta-data/")
    assert blocked.value.code == "url_blocked"

    with pytest.raises(ApiNotFound) as missing:
        client.get("0" * 32)
    assert missing.value.code == "not_found" and missing.value.request_id

    with pytest.raises(ApiInvalidRequest) as limit:
        client.list_jobs(limit=0)
    assert limit.value.code == "validation_error"


def test_unreachable_api_raises_api_unavailable() -> None:
    with Client(f"http://127.0.0.1:{free_port()}") as dead, pytest.raises(ApiUnavailable) as exc:
        dead.get("abc")
    assert exc.value.code == "connection_error" and exc.value.status is None


def test_list_jobs_is_newest_first(client: Client, page_server: PageServer) -> None:
    accepted = client.submit_many([page_server.url(f"/index.html?n={n}") for n in range(3)])
    listed = client.list_jobs(limit=3)
    assert [job.id for job in listed] == [a.id for a in reversed(accepted)]
    assert len(client.list_jobs(limit=2)) == 2
    finished = client.wait_many(accepted, timeout=60)
    assert [job.status for job in finished] == [JobStatus.succeeded] * 3
    assert all(job.result is not None for job in client.list_jobs(limit=3))


def test_batch_helpers_against_this_api(client: Client, page_server: PageServer) -> None:
    accepted = client.submit_batch([page_server.url("/index.html")] * 2, width=320)
    batch = client.wait_batch(accepted.id, timeout=60)
    assert batch.finished and len(batch.jobs) == 2


@pytest.mark.parametrize(
    ("shape", "done"),
    [
        ({"id": "b", "counts": {"queued": 1, "running": 0, "succeeded": 1}}, False),
        ({"id": "b", "counts": {"queued": 0, "running": 0, "succeeded": 1, "failed": 1}}, True),
        ({"id": "b", "jobs": [{"id": "1", "status": "succeeded"}, {"id": "2", "status": "running"}]},
         False),
        ({"id": "b", "jobs": [{"id": "1", "status": "succeeded"}, {"id": "2", "status": "failed"}]},
         True),
        ({"id": "b", "jobs": [{"id": "1", "status": None}, {"id": "2", "status": "failed"}]},
         True),
        ({"id": "b", "status": "completed"}, True),
        ({"id": "b", "done": False, "counts": {"queued": 0, "succeeded": 2}}, False),
        ({"id": "b"}, False),
    ],
)
def test_batch_finished_reads_done_counts_jobs_or_status(shape: dict[str, Any], done: bool) -> None:
    assert Batch.model_validate(shape).finished is done


def test_async_client_captures_many_concurrently(base: str, page_server: PageServer) -> None:
    async def scenario() -> None:
        async with AsyncClient(base) as shotline:
            shot = await shotline.capture(page_server.url("/index.html"), width=300, height=200)
            assert _image(shot.content) == ("PNG", (300, 200))
            accepted = await shotline.submit_many(
                [page_server.url(f"/index.html?async={n}") for n in range(2)], format="webp")
            jobs = await shotline.wait_many(accepted, timeout=60)
            assert [job.status for job in jobs] == [JobStatus.succeeded] * 2
            assert _image(await shotline.download(jobs[0]))[0] == "WEBP"
            with pytest.raises(JobFailed):
                await shotline.capture(page_server.url("/status/500"))
            with pytest.raises(ApiNotFound):
                await shotline.get("f" * 32)
            assert (await shotline.list_jobs(limit=1))[0].options.url.endswith("/status/500")

    asyncio.run(scenario())


def test_importing_the_client_does_not_import_the_server() -> None:
    code = ("import sys, shotline.client; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'fastapi', 'starlette', 'celery', 'kombu', 'redis', 'boto3', 'playwright'}))")
    completed = subprocess.run(python_command("-c", code), cwd=REPO_ROOT, env=child_env({}),
                               capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "[]"


def test_webhook_verify_is_reexported() -> None:
    import shotline.client
    import shotline.webhooks as webhooks

    assert shotline.client.verify is webhooks.verify


# --- shotline submit (the CLI on top of the client) ---------------------------------------


def _submit(base: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_command("-m", "shotline.cli", "submit", *args, "--api", base, "--json"),
        env=child_env({}), cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
    )


def test_cli_submit_wait_writes_the_file(base: str, page_server: PageServer, tmp_path: Path
                                         ) -> None:
    output = tmp_path / "shot.jpg"
    done = _submit(base, page_server.url("/index.html"), "--wait", "-o", str(output),
                   "--width", "500", "--height", "400")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["options"]["format"] == "jpeg"
    assert _image(output.read_bytes()) == ("JPEG", (500, 400))
    assert f"to {output}" in done.stderr

    queued = _submit(base, page_server.url("/index.html"))
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["status"] == "queued"


def test_cli_submit_reports_failures(base: str, page_server: PageServer, tmp_path: Path) -> None:
    failed = _submit(base, page_server.url("/status/503"), "--wait")
    assert failed.returncode == 1
    assert "http_error" in failed.stderr and "failed" in failed.stderr

    refused = _submit(base, "http://10.0.0.1/", "-o", str(tmp_path / "x.png"))
    assert refused.returncode == 1 and "url_blocked" in refused.stderr
    assert not (tmp_path / "x.png").exists()


def test_checksum_mismatch_is_an_error(client: Client, page_server: PageServer) -> None:
    job = client.wait(client.submit(page_server.url("/index.html")), timeout=30)
    assert job.result is not None
    tampered = job.model_copy(update={"result": job.result.model_copy(update={"sha256": "0" * 64})})
    with pytest.raises(ApiError) as excinfo:
        client.download(tampered)
    assert excinfo.value.code == "checksum_mismatch"


def test_a_newer_servers_extra_fields_do_not_break_reading_jobs(
    client: Client, page_server: PageServer
) -> None:
    from shotline.models import JobList, JobView
    from shotline.wire import parse_response as _parse

    record = client.get(client.submit(page_server.url("/index.html"))).model_dump(mode="json")
    record["options"]["block_ads"] = True  # an option this client does not know yet
    record["cached"] = False
    parsed = _parse(JobView, httpx.Response(200, json=record))
    assert parsed.id == record["id"] and parsed.options.url == record["options"]["url"]
    listing = _parse(JobList, httpx.Response(200, json={"jobs": [record]}))
    assert listing.jobs[0].id == record["id"]
    with pytest.raises(ApiNotFound):
        _parse(JobView, httpx.Response(404, json={"error": "not_found", "message": "gone",
                                                  "request_id": "r1"}))

"""End to end over HTTP with the other backends: S3 storage (moto's server over HTTP) and
the SnapAPI engine (a stand-in speaking SnapAPI's published API)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import ProcessFactory
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.polling import submit, wait_for_job
from tests.servers import PageServer

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def test_s3_storage_end_to_end(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer,
    moto_endpoint: str, s3_admin: Any,
) -> None:
    s3_admin.create_bucket(Bucket="shotline-e2e")
    env = {"SHOTLINE_STORAGE": "s3", "SHOTLINE_S3_BUCKET": "shotline-e2e",
           "SHOTLINE_S3_ENDPOINT_URL": moto_endpoint, "SHOTLINE_S3_REGION": "us-east-1",
           **AWS_ENV}
    processes.worker(**env)
    base = processes.api(**env)

    accepted = submit(client, base, url=page_server.url("/index.html"), width=640, height=480)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    url = job["result"]["url"]
    assert url.startswith(moto_endpoint) and "X-Amz-Signature=" in url

    stored = s3_admin.get_object(Bucket="shotline-e2e", Key=f"results/{job['id']}.png")
    assert stored["ContentType"] == "image/png"
    download = client.get(url)
    assert download.status_code == 200
    assert download.content == stored["Body"].read()
    with Image.open(io.BytesIO(download.content)) as image:
        assert image.size == (640, 480)
    assert client.get(f"{base}/readyz").json()["checks"]["storage"] == "ok"


@pytest.fixture
def snapapi() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key="sk_test_shotline") as snap:
        yield snap


def test_snapapi_engine_end_to_end(
    processes: ProcessFactory, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    env = {"SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": "sk_test_shotline",
           "SHOTLINE_SNAPAPI_BASE_URL": snapapi.base_url}
    processes.worker(**env)
    base = processes.api(**env)
    accepted = submit(client, base, url="http://127.0.0.1:9/page", format="jpeg", quality=60,
                      width=500, height=300, full_page=True, dark_mode=True)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    with Image.open(io.BytesIO(client.get(job["result"]["url"]).content)) as image:
        assert image.format == "JPEG" and image.width == 500

    (call,) = snapapi.requests
    assert call.path == "/v1/screenshot"
    assert call.headers["x-api-key"] == "sk_test_shotline"
    assert call.json["url"] == "http://127.0.0.1:9/page"
    assert (call.json["format"], call.json["quality"], call.json["fullPage"],
            call.json["darkMode"]) == ("jpeg", 60, True, True)


def test_snapapi_rejection_fails_the_job_with_its_message(
    processes: ProcessFactory, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    env = {"SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": "sk_test_shotline",
           "SHOTLINE_SNAPAPI_BASE_URL": snapapi.base_url}
    snapapi.script([(429, {"Retry-After": "1"}),
                    (403, {}, b'{"statusCode":403,"error":"Forbidden",'
                              b'"message":"Custom CSS requires the Starter plan"}')])
    processes.worker(**env)
    base = processes.api(**env)
    accepted = submit(client, base, url="http://127.0.0.1:9/page")
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed", job
    assert job["attempts"] == 2  # the 429 was retried after its Retry-After
    assert job["error"]["code"] == "engine_rejected" and job["error"]["status"] == 403
    assert "Starter plan" in job["error"]["message"]

"""End to end over HTTP on real parts: API and Celery worker processes, Redis, Chromium,
local storage with signed download links."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import ProcessFactory
from tests.polling import submit, wait_for_job
from tests.servers import PageServer


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    """One worker (single attempt, so failures show at once) and an API for this module."""
    module_processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    return module_processes.api(SHOTLINE_URL_TTL_SECONDS="2")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def test_png_capture_end_to_end(base: str, client: httpx.Client, page_server: PageServer) -> None:
    accepted = submit(client, base, url=page_server.url("/index.html"), width=800, height=600)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1 and job["started_at"] and job["finished_at"]
    result = job["result"]
    assert (result["content_type"], result["width"], result["height"]) == ("image/png", 800, 600)

    download = client.get(result["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert hashlib.sha256(download.content).hexdigest() == result["sha256"]
    assert len(download.content) == result["bytes"]
    with Image.open(io.BytesIO(download.content)) as image:
        assert image.format == "PNG" and image.size == (800, 600)
        assert image.convert("RGB").getpixel((100, 150)) == (255, 0, 0)  # the red #box

    redirect = client.get(f"{base}/v1/jobs/{job['id']}/result")
    assert redirect.status_code == 302
    assert client.get(redirect.headers["location"]).content == download.content


def test_pdf_capture(base: str, client: httpx.Client, page_server: PageServer) -> None:
    accepted = submit(client, base, url=page_server.url("/index.html"), format="pdf")
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["result"]["content_type"] == "application/pdf"
    assert client.get(job["result"]["url"]).content.startswith(b"%PDF")


def test_download_url_is_fresh_on_each_poll_and_expires(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/index.html"), format="jpeg", quality=70)
    job = wait_for_job(client, accepted["status_url"])
    old_url = job["result"]["url"]
    assert client.get(old_url).status_code == 200
    time.sleep(3)  # the module's API signs URLs for 2 s
    expired = client.get(old_url)
    assert expired.status_code == 403
    assert expired.json()["error"] == "invalid_signature"
    fresh = client.get(accepted["status_url"]).json()["result"]["url"]
    assert fresh != old_url
    assert client.get(fresh).status_code == 200


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_tampered_download_links_are_refused(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/index.html"))
    url = wait_for_job(client, accepted["status_url"])["result"]["url"]
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    tampered = [
        _with_query(url, signature="0" * 64),
        _with_query(url, expires=str(int(expires) + 3600)),
        url.replace(".png", ".jpeg"),
    ]
    for bad in tampered:
        response = client.get(bad)
        assert response.status_code == 403, bad
        assert response.json()["error"] == "invalid_signature"


@pytest.mark.parametrize(
    ("path", "code", "status"),
    [
        ("/status/404", "http_error", 404),
        ("/status/503", "http_error", 503),
    ],
)
def test_http_error_pages_fail_the_job(
    base: str, client: httpx.Client, page_server: PageServer, path: str, code: str, status: int
) -> None:
    accepted = submit(client, base, url=page_server.url(path))
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == code and job["error"]["status"] == status
    assert job["result"] is None
    conflict = client.get(f"{base}/v1/jobs/{job['id']}/result")
    assert conflict.status_code == 409 and conflict.json()["error"] == "job_failed"
    assert f"job {job['id']} failed ({code}: " in conflict.json()["message"]


def test_timeout_fails_the_job(base: str, client: httpx.Client, page_server: PageServer) -> None:
    accepted = submit(client, base, url=page_server.url("/slow?ms=20000"), timeout_ms=1500)
    job = wait_for_job(client, accepted["status_url"], timeout=30)
    assert job["status"] == "failed" and job["error"]["code"] == "timeout", job


def test_unreachable_host_fails_with_navigation_failed(
    base: str, client: httpx.Client
) -> None:
    from tests.servers import free_port

    accepted = submit(client, base, url=f"http://127.0.0.1:{free_port()}/")
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed" and job["error"]["code"] == "navigation_failed", job


def test_result_is_409_while_queued(base: str, client: httpx.Client, page_server: PageServer
                                    ) -> None:
    accepted = submit(client, base, url=page_server.url("/slow?ms=1500"))
    early = client.get(f"{base}/v1/jobs/{accepted['id']}/result")
    assert early.status_code == 409
    assert wait_for_job(client, accepted["status_url"])["status"] == "succeeded"

"""Capture options end to end over HTTP: API and Celery worker processes, Redis, Chromium,
local storage; and the 422 for options the configured engine cannot honour."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.conftest import ProcessFactory
from tests.polling import submit, wait_for_job
from tests.servers import PageServer


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    """A worker and an API on the chromium engine."""
    module_processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    return module_processes.api()


@pytest.fixture(scope="module")
def snapapi_base(module_processes: ProcessFactory) -> str:
    """An API configured for the snapapi engine (nothing is captured through it)."""
    return module_processes.api(SHOTLINE_ENGINE="snapapi", SHOTLINE_SNAPAPI_KEY="sk_test_e2e")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def test_device_cookie_banner_and_thumbnail_through_the_api(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/fidelity/consent.html"),
                      device="iphone-se", block_cookie_banners=True, thumbnail_width=250,
                      http_auth={"username": "nobody", "password": "s3cret"})
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["width"], result["height"]) == (250, 445)  # 750x1334 scaled down
    assert result["title"] == "accepted"  # the banner's "Accept all" was clicked
    assert result["final_url"] == page_server.url("/fidelity/consent.html")
    assert (result["http_status"], result["blocked_requests"]) == (200, 0)
    assert job["options"]["device"] == "iphone-se" and job["options"]["width"] == 375
    assert job["options"]["http_auth"] == {"username": "nobody", "password": "***"}
    with Image.open(io.BytesIO(client.get(result["url"]).content)) as shot:
        assert shot.size == (250, 445)
        colors = shot.convert("RGB").getcolors(maxcolors=1_000_000) or []
        rgb = [c for _n, c in colors if isinstance(c, tuple)]
        assert not [c for c in rgb if c[0] > 200 and c[1] < 60 and c[2] > 200]


def test_blocked_requests_are_counted_on_the_job(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/fidelity/ads.html"),
                      block_resources=["image"], format="jpeg", quality=60)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["result"]["blocked_requests"] == 2


def test_options_the_engine_cannot_honour_are_422(
    base: str, snapapi_base: str, client: httpx.Client, page_server: PageServer
) -> None:
    body = {"url": page_server.url("/index.html"), "omit_background": True,
            "cookies": [{"name": "a", "value": "b", "http_only": True}]}
    refused = client.post(f"{snapapi_base}/v1/screenshots", json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["error"] == "option_not_supported"
    assert [d["field"] for d in error["details"]] == ["omit_background", "cookies.0.http_only"]
    assert "snapapi" in error["message"]
    # Supported options still pass on the snapapi engine; everything passes on chromium.
    assert client.post(f"{snapapi_base}/v1/screenshots",
                       json={"url": body["url"], "device": "ipad", "block_ads": True}
                       ).status_code == 202
    assert client.post(f"{base}/v1/screenshots", json=body).status_code == 202


def test_invalid_option_values_are_422_naming_the_field(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/screenshots", json={
        "url": "https://example.com", "headers": {"Host": "evil.example"}})
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert "headers.Host" in response.json()["details"][0]["field"]

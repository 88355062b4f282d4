"""Bad input and broken dependencies get clear JSON errors from the API, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ProcessFactory
from tests.polling import assert_error
from tests.servers import free_port


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    return module_processes.api()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client




@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com", "width": 99}, "width"),
        ({"url": "https://example.com", "width": 3841}, "width"),
        ({"url": "https://example.com", "height": 2161}, "height"),
        ({"url": "https://example.com", "format": "bmp"}, "format"),
        ({"url": "https://example.com", "format": "jpeg", "quality": 101}, "quality"),
        ({"url": "https://example.com", "device_scale_factor": 4}, "device_scale_factor"),
        ({"url": "https://example.com", "max_height": 20001}, "max_height"),
        ({"url": "https://example.com", "delay_ms": 30001}, "delay_ms"),
        ({"url": "https://example.com", "timeout_ms": 999}, "timeout_ms"),
        ({"url": "https://example.com", "timeout_ms": 60001}, "timeout_ms"),
        ({"url": "https://example.com", "wait_until": "never"}, "wait_until"),
        ({"url": "https://example.com", "colour": "red"}, "colour"),
        ({"url": "https://example.com", "full_page": "maybe"}, "full_page"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    base: str, client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = client.post(f"{base}/v1/screenshots", json=body)
    error = assert_error(response, 422, "validation_error")
    assert field in {d["field"] for d in error["details"]}, error
    assert field in error["message"]


def test_option_combinations_are_checked(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/screenshots",
                           json={"url": "https://example.com", "quality": 50})
    assert "quality applies to jpeg and webp only" in assert_error(
        response, 422, "validation_error")["message"]


def test_invalid_json_is_422(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/screenshots", content=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]/",
     "http://192.168.1.1:8080/", "http://[::ffff:10.0.0.1]/", "HTTP://172.16.0.1/"],
)
def test_blocked_addresses_are_422_on_url(base: str, client: httpx.Client, url: str) -> None:
    # The tests allow 127.0.0.0/8 (for their pages); every other private range stays blocked.
    response = client.post(f"{base}/v1/screenshots", json={"url": url})
    error = assert_error(response, 422, "url_blocked")
    assert error["details"][0]["field"] == "url"


def test_unknown_job_is_404(base: str, client: httpx.Client) -> None:
    assert_error(client.get(f"{base}/v1/jobs/does-not-exist"), 404, "not_found")
    assert_error(client.get(f"{base}/v1/jobs/does-not-exist/result"), 404, "not_found")
    assert_error(client.get(f"{base}/v1/nothing-here"), 404, "not_found")


def test_request_id_is_echoed_or_made(base: str, client: httpx.Client) -> None:
    given = client.get(f"{base}/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get(f"{base}/healthz")
    assert len(made.headers["x-request-id"]) == 32


def test_health_and_readiness(base: str, client: httpx.Client) -> None:
    assert client.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = client.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok", "storage": "ok"}


def test_openapi_documents_the_request_with_examples(base: str, client: httpx.Client) -> None:
    spec = client.get(f"{base}/openapi.json").json()
    schema = spec["components"]["schemas"]["ScreenshotRequest"]
    assert schema["examples"] and set(schema["properties"]) >= {
        "url", "format", "quality", "width", "height", "device_scale_factor", "full_page",
        "max_height", "selector", "wait_until", "wait_for_selector", "delay_ms", "timeout_ms",
        "dark_mode",
    }
    assert client.get(f"{base}/docs").status_code == 200


def test_openapi_declares_the_render_links_query(base: str, client: httpx.Client) -> None:
    spec = client.get(f"{base}/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/v1/render"]["get"]["parameters"]}
    assert all(p["in"] == "query" for p in params.values())
    assert {name for name, p in params.items() if p["required"]} == {
        "url", "key_id", "expires", "signature"}
    # The capture options a query string can carry, with their types and bounds...
    assert set(params) >= {"format", "quality", "width", "height", "device_scale_factor",
                           "full_page", "selector", "wait_until", "delay_ms", "timeout_ms",
                           "dark_mode", "device", "cache_ttl", "fresh"}
    assert params["format"]["schema"]["enum"] == ["png", "jpeg", "webp", "pdf", "mp4", "webm", "gif"]
    assert params["width"]["schema"]["maximum"] == 3840
    assert params["expires"]["schema"]["type"] == "integer"
    # ...and not those that need a list or an object (a query value cannot be one).
    assert not set(params) & {"headers", "cookies", "hide_selectors", "pdf_options", "clip"}
    assert "$ref" not in str(params)


def test_redis_down_is_503_with_json(processes: ProcessFactory, client: httpx.Client) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    base = processes.api(SHOTLINE_REDIS_URL=dead)
    # An allowed literal address, so the URL check passes and Redis is what fails.
    submitted = client.post(f"{base}/v1/screenshots", json={"url": "http://127.0.0.1:9/"})
    error = assert_error(submitted, 503, "service_unavailable")
    assert submitted.headers["retry-after"]
    assert "Redis" in error["message"]
    assert_error(client.get(f"{base}/v1/jobs/abc"), 503, "service_unavailable")
    assert client.get(f"{base}/readyz").status_code == 503


def test_webhook_url_without_a_signing_secret_is_refused(base: str, client: httpx.Client) -> None:
    """This API has no SHOTLINE_WEBHOOK_SECRET: a webhook could not be signed, so it is refused."""
    response = client.post(f"{base}/v1/screenshots", json={
        "url": "http://127.0.0.1:9/", "webhook_url": "http://127.0.0.1:9/hook"})
    body = assert_error(response, 422, "webhook_secret_missing")
    assert "SHOTLINE_WEBHOOK_SECRET" in body["message"]

"""Hostile request bodies: too large, too deep, too long, malformed — a 4xx, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ProcessFactory
from tests.polling import assert_error

LIMIT = 4096


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    return module_processes.api(SHOTLINE_MAX_REQUEST_BYTES=str(LIMIT))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client




def test_a_body_over_the_limit_is_413_without_being_read(base: str, client: httpx.Client) -> None:
    padding = "x" * LIMIT
    response = client.post(
        f"{base}/v1/screenshots", json={"url": "http://127.0.0.1:9/", "selector": padding}
    )
    assert_error(response, 413, "payload_too_large")


def test_a_chunked_body_over_the_limit_is_413(base: str, client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"url": "http://127.0.0.1:9/", "selector": "'
        for _ in range(LIMIT // 512 + 2):
            yield b"x" * 512
        yield b'"}'

    response = client.post(
        f"{base}/v1/screenshots", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def test_a_body_within_the_limit_is_read(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/screenshots", json={"url": "http://127.0.0.1:9/"})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"[" * 2000 + b"]" * 2000, "application/json"),  # nesting past the recursion limit
        (b'{"url": "http://127.0.0.1:9/", "width": NaN}', "application/json"),
        (b'{"url": "http://127.0.0.1:9/", "width": 1e999}', "application/json"),
        (b'{"url": "\xff\xfe"}', "application/json"),
        (b'{"url": "http://127.0.0.1:9/"', "application/json"),
        (b'{"url": "http://127.0.0.1:9/"}', "text/plain"),
        (b"url=http://127.0.0.1:9/", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b'{"url": "http://127.0.0.1:9/", "url": "http://192.0.2.1/"}', "application/json"),
        (b'{"url": "\\ud800"}', "application/json"),
        (b'{"url": "http://127.0.0.1\\u0000.evil.test/"}', "application/json"),
    ],
    ids=["deep", "nan", "infinity", "bad-utf8", "truncated", "text-plain", "form", "empty",
         "duplicate-key", "lone-surrogate", "nul"],
)
def test_malformed_bodies_are_4xx(
    base: str, client: httpx.Client, content: bytes, content_type: str
) -> None:
    response = client.post(
        f"{base}/v1/screenshots", content=content, headers={"content-type": content_type}
    )
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) >= {"error", "message", "request_id"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "http://127.0.0.1:9/" + "a" * 2048),
        ("selector", "a" * 1001),
        ("wait_for_selector", "a" * 1001),
        ("width", 10**30),
        ("delay_ms", -1),
        ("max_height", 20001),
        ("timeout_ms", 10**9),
        ("hide_selectors", ["a"] * 51),
        ("headers", {f"x-h{i}": "v" for i in range(51)}),
        ("cookies", [{"name": f"c{i}", "value": "v"} for i in range(51)]),
    ],
    ids=["url", "selector", "wait_for_selector", "width", "delay_ms", "max_height",
         "timeout_ms", "hide_selectors", "headers", "cookies"],
)
def test_fields_over_their_caps_are_422(
    base: str, client: httpx.Client, field: str, value: Any
) -> None:
    body: dict[str, Any] = {"url": "http://127.0.0.1:9/", field: value}
    response = client.post(f"{base}/v1/screenshots", json=body)
    details = assert_error(response, 422, "validation_error")["details"]
    assert any(detail["field"] == field for detail in details), details

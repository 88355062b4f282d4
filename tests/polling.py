"""Helpers for tests that drive the HTTP API: submit, poll, check error bodies."""

from __future__ import annotations

import time
from typing import Any

import httpx


def submit(client: httpx.Client, base: str, **body: Any) -> dict[str, Any]:
    """POST a capture and assert the 202 contract; returns the body."""
    response = client.post(f"{base}/v1/screenshots", json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    assert accepted["status"] == "queued"
    assert response.headers["location"] == accepted["status_url"]
    return accepted


def wait_for_job(client: httpx.Client, status_url: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Poll ``status_url`` until the job is succeeded or failed; returns the record."""
    deadline = time.monotonic() + timeout
    while True:
        record: dict[str, Any] = client.get(status_url).raise_for_status().json()
        if record["status"] in ("succeeded", "failed"):
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {record['status']} after {timeout}s: {record}")
        time.sleep(0.1)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the API's one JSON error shape with ``status`` and ``code``; returns the body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body

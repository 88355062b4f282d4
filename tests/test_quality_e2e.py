"""The quality options end to end over HTTP: API and Celery worker processes, Redis,
Chromium, local storage. Bad cookies are refused at submit; content checks fail the job
once (not retried); blank pictures and the notes of the capture show on the job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ProcessFactory
from tests.polling import assert_error, submit, wait_for_job
from tests.servers import PageServer


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    module_processes.worker()  # the default attempts: a retried error would show
    return module_processes.api()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.mark.parametrize(
    ("cookie", "words"),
    [
        ({"name": "a;b", "value": "x"}, "'a;b'"),
        ({"name": "a=b", "value": "x"}, "'a=b'"),
        ({"name": "session", "value": "x\r\nSet-Cookie: evil=1"}, "'session'"),
        ({"name": "session", "value": "a;b"}, "'session'"),
        ({"name": "session", "value": "x", "domain": "."}, "not a domain"),
        ({"name": "big", "value": "x" * 4095}, "exceed 4096 bytes"),
    ],
)
def test_cookies_a_browser_cannot_hold_are_422_at_submit(
    base: str, client: httpx.Client, cookie: dict[str, Any], words: str
) -> None:
    response = client.post(f"{base}/v1/screenshots",
                           json={"url": "https://example.com", "cookies": [cookie]})
    error = assert_error(response, 422, "validation_error")
    assert "cookies.0" in {d["field"] for d in error["details"]}, error
    assert words in error["message"]


def test_quality_option_limits_are_422(base: str, client: httpx.Client) -> None:
    for body, field in (
        ({"fail_if_content_contains": [""]}, "fail_if_content_contains.0"),
        ({"remove_selectors": ["x"] * 51}, "remove_selectors"),
        ({"wait_for_function": ""}, "wait_for_function"),
        ({"retry_if_blank": "sometimes"}, "retry_if_blank"),
    ):
        response = client.post(f"{base}/v1/screenshots",
                               json={"url": "https://example.com", **body})
        error = assert_error(response, 422, "validation_error")
        assert field in {d["field"] for d in error["details"]}, (field, error)


def test_content_check_fails_the_job_once(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/quality/waits.html"),
                      fail_if_content_missing=["Price: 43 EUR"])
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "content_check_failed"
    assert "Price: 43 EUR" in job["error"]["message"]
    assert job["attempts"] == 1  # permanent: not retried


def test_blank_result_and_notes_show_on_the_job(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    blank = wait_for_job(client, submit(client, base,
                                        url=page_server.url("/quality/blank.html"))["status_url"])
    assert blank["status"] == "succeeded" and blank["result"]["blank"] is True
    page = wait_for_job(client, submit(
        client, base, url=page_server.url("/quality/popups.html"))["status_url"])
    assert page["result"]["popups_blocked"] == 301
    content = wait_for_job(client, submit(client, base,
                                          url=page_server.url("/index.html"))["status_url"])
    assert content["result"]["blank"] is False
    capped = wait_for_job(client, submit(
        client, base, url=page_server.url("/quality/polling.html"), wait_until="networkidle",
        timeout_ms=8000)["status_url"])
    assert capped["status"] == "succeeded", capped
    assert capped["result"]["notes"][0].startswith("networkidle:")


def test_a_lone_surrogate_in_the_title_does_not_break_the_job_list(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    job = wait_for_job(client, submit(
        client, base, url=page_server.url("/quality/surrogate.html"))["status_url"])
    assert job["status"] == "succeeded", job
    assert job["result"]["title"] == "broken \ufffd title"
    listing = client.get(f"{base}/v1/jobs")
    assert listing.status_code == 200, listing.text
    assert job["id"] in listing.text
    assert client.get(f"{base}/healthz").status_code == 200

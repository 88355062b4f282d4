"""The ``snapapi`` engine against the SnapAPI stand-in, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image

from shared.backoff import parse_retry_after
from shared.errors import (
    CaptureTimeout,
    ConfigurationError,
    EngineError,
    EngineRejected,
    ResultTooLarge,
)
from shared.jobs import CaptureOptions, ImageFormat
from tests.fakes.snapapi_server import DROP, SCREENSHOT_REQUEST, Reply, SnapApiStandIn
from tests.servers import child_env, free_port, python_command, stop_process, wait_for_port
from worker.engines.base import Capture
from worker.engines.snapapi import SNAPAPI_FIELDS, SnapApiEngine

API_KEY = "sk_test_engine"
#: Never fetched: the stand-in renders without loading pages.
PAGE_URL = "https://example.com/page"

T = TypeVar("T")


@pytest.fixture(scope="module")
def snap_server() -> Iterator[SnapApiStandIn]:
    """One stand-in for the module (starting servers costs time)."""
    with SnapApiStandIn(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def snap(snap_server: SnapApiStandIn) -> Iterator[SnapApiStandIn]:
    """The stand-in, with no requests, script, delay or hang left from other tests."""
    snap_server.reset()
    yield snap_server
    snap_server.reset()


def with_engine(
    snap: SnapApiStandIn,
    use: Callable[[SnapApiEngine], Coroutine[Any, Any, T]],
    **engine_kwargs: Any,
) -> T:
    """Run ``use(engine)`` in a fresh event loop with a started engine, closed afterwards."""
    engine_kwargs.setdefault("base_url", snap.base_url)
    engine_kwargs.setdefault("api_key", API_KEY)
    engine_kwargs.setdefault("timeout_margin", 0.25)

    async def main() -> T:
        engine = SnapApiEngine(**engine_kwargs)
        await engine.start()
        try:
            return await use(engine)
        finally:
            await engine.aclose()

    return asyncio.run(main())


def capture(snap: SnapApiStandIn, *, request_id: str | None = None,
            engine_kwargs: dict[str, Any] | None = None, **fields: Any) -> Capture:
    """One capture of ``PAGE_URL`` with ``fields`` as capture options."""
    options = CaptureOptions(url=PAGE_URL, **fields)
    return with_engine(
        snap, lambda engine: engine.capture(options, request_id=request_id),
        **(engine_kwargs or {}),
    )


# --- Successful captures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "pillow_format", "size"),
    [
        ({"format": "png", "width": 800, "height": 600}, "PNG", (800, 600)),
        ({"format": "jpeg", "quality": 70, "width": 640, "height": 480,
          "device_scale_factor": 2}, "JPEG", (1280, 960)),
        ({"format": "webp", "width": 1024, "height": 768}, "WEBP", (1024, 768)),
        ({"full_page": True, "max_height": 1500, "width": 1000}, "PNG", (1000, 1500)),
    ],
)
def test_image_capture_has_the_requested_format_and_size(
    snap: SnapApiStandIn, fields: dict[str, Any], pillow_format: str, size: tuple[int, int]
) -> None:
    result = capture(snap, **fields)

    expected = ImageFormat(fields.get("format", "png"))
    assert result.content_type == expected.content_type
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.format == pillow_format
        assert image.size == size


def test_pdf_capture_returns_a_pdf(snap: SnapApiStandIn) -> None:
    result = capture(snap, format="pdf")

    assert result.content_type == "application/pdf"
    assert result.data.startswith(b"%PDF-")
    assert result.data.rstrip().endswith(b"%%EOF")
    assert snap.bodies[0]["format"] == "pdf"


def test_defaults_send_only_what_defines_the_output(snap: SnapApiStandIn) -> None:
    capture(snap)

    assert snap.bodies == [
        {"url": PAGE_URL, "format": "png", "width": 1280, "height": 800, "timeout": 30000}
    ]


def test_options_are_sent_in_snapapi_camel_case(snap: SnapApiStandIn) -> None:
    capture(
        snap, format="jpeg", quality=65, width=1440, height=900, device_scale_factor=2,
        full_page=True, max_height=4000, wait_until="networkidle", wait_for_selector="#main",
        delay_ms=250, timeout_ms=15000, dark_mode=True,
    )
    capture(snap, selector="#hero", width=800, height=600)

    assert snap.bodies == [
        {
            "url": PAGE_URL, "format": "jpeg", "quality": 65, "width": 1440, "height": 900,
            "deviceScaleFactor": 2.0, "fullPage": True, "fullPageMaxHeight": 4000,
            "waitUntil": "networkidle", "waitForSelector": "#main", "delay": 250,
            "timeout": 15000, "darkMode": True,
        },
        {
            "url": PAGE_URL, "format": "png", "width": 800, "height": 600, "timeout": 30000,
            "selector": "#hero",
        },
    ]
    assert all(request.status == 200 for request in snap.requests)


def test_mapping_table_names_real_fields_on_both_sides() -> None:
    spec_keys = set(SCREENSHOT_REQUEST["properties"])
    for field in SNAPAPI_FIELDS:
        assert field.option in CaptureOptions.model_fields, field.option
        for key in field.key.split("/"):  # spread fields name each key they produce
            assert key in spec_keys, key
    assert len({field.key for field in SNAPAPI_FIELDS}) == len(SNAPAPI_FIELDS)


def test_api_key_and_request_id_are_sent_as_headers(snap: SnapApiStandIn) -> None:
    capture(snap, request_id="req-7f3a")
    capture(snap)

    first, second = snap.requests
    assert first.headers["x-api-key"] == API_KEY
    assert first.headers["x-request-id"] == "req-7f3a"
    assert first.headers["content-type"] == "application/json"
    assert second.headers["x-api-key"] == API_KEY
    assert "x-request-id" not in second.headers


def test_one_engine_reuses_one_connection(snap: SnapApiStandIn) -> None:
    async def three_captures(engine: SnapApiEngine) -> None:
        for _ in range(3):
            await engine.capture(CaptureOptions(url=PAGE_URL))

    with_engine(snap, three_captures)

    ports = {request.client_port for request in snap.requests}
    assert len(snap.requests) == 3
    assert len(ports) == 1  # keep-alive on the engine's single, long-lived client


def test_concurrent_captures_run_in_parallel(snap: SnapApiStandIn) -> None:
    snap.delay = 0.3

    async def four_at_once(engine: SnapApiEngine) -> list[Capture]:
        options = CaptureOptions(url=PAGE_URL, width=320, height=240)
        return await asyncio.gather(*(engine.capture(options) for _ in range(4)))

    started = time.monotonic()
    results = with_engine(snap, four_at_once)
    elapsed = time.monotonic() - started

    assert len(results) == 4
    assert snap.peak_concurrency == 4
    assert elapsed < 4 * 0.3


def test_proxy_environment_variables_are_ignored(
    snap: SnapApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    result = capture(snap)

    assert result.content_type == "image/png"
    assert len(snap.requests) == 1


# --- SnapAPI's refusals: permanent ----------------------------------------------------


def test_400_is_rejected_with_snapapis_message(snap: SnapApiStandIn) -> None:
    snap.script([(400, {}, {"statusCode": 400, "error": "Bad Request",
                            "message": "Could not resolve host example.invalid"})])

    with pytest.raises(EngineRejected) as caught:
        capture(snap)

    assert "Could not resolve host example.invalid" in caught.value.message
    assert caught.value.status == 400
    assert caught.value.retryable is False
    assert caught.value.code == "engine_rejected"


def test_wrong_api_key_is_rejected_without_leaking_the_key(snap: SnapApiStandIn) -> None:
    with pytest.raises(EngineRejected) as caught:
        capture(snap, engine_kwargs={"api_key": "sk_live_wrong_key"})

    assert caught.value.status == 401
    assert "Invalid API key" in caught.value.message
    assert "sk_live_wrong_key" not in caught.value.message
    assert snap.requests[0].status == 401


@pytest.mark.parametrize("status", [402, 403])
def test_quota_and_plan_refusals_are_permanent(snap: SnapApiStandIn, status: int) -> None:
    snap.script([status])

    with pytest.raises(EngineRejected) as caught:
        capture(snap)

    assert caught.value.status == status
    assert caught.value.retryable is False


def test_redirects_are_not_followed(snap: SnapApiStandIn) -> None:
    snap.script([(302, {"Location": f"http://127.0.0.1:{free_port()}/elsewhere"}, b"")])

    with pytest.raises(EngineRejected) as caught:
        capture(snap)

    assert caught.value.status == 302
    assert len(snap.requests) == 1


# --- SnapAPI's refusals: retryable ----------------------------------------------------


def test_429_is_retryable_after_retry_after_seconds(snap: SnapApiStandIn) -> None:
    snap.script([(429, {"Retry-After": "7"})])

    with pytest.raises(EngineError) as caught:
        capture(snap)

    assert caught.value.retryable is True
    assert caught.value.retry_after == 7.0
    assert caught.value.status == 429
    assert "Rate limit exceeded" in caught.value.message
    assert len(snap.requests) == 1  # the engine never retries by itself


def test_429_retry_after_as_http_date(snap: SnapApiStandIn) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    snap.script([(429, {"Retry-After": format_datetime(when, usegmt=True)})])

    with pytest.raises(EngineError) as caught:
        capture(snap)

    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


def test_429_without_retry_after_waits_for_the_rate_limit_reset(snap: SnapApiStandIn) -> None:
    snap.script([429])  # the stand-in still sends X-RateLimit-Reset (window end, unix ms)

    with pytest.raises(EngineError) as caught:
        capture(snap)

    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 60


def test_503_is_retryable(snap: SnapApiStandIn) -> None:
    snap.script([(503, {"Retry-After": "2"})])

    with pytest.raises(EngineError) as caught:
        capture(snap)

    assert type(caught.value) is EngineError
    assert caught.value.retryable is True
    assert caught.value.status == 503
    assert caught.value.retry_after == 2.0
    assert "Service temporarily unavailable" in caught.value.message


def test_non_json_error_bodies_are_handled(snap: SnapApiStandIn) -> None:
    snap.script([
        Reply(502, {"Content-Type": "text/html"}, b"<html><body>nginx bad gateway</body></html>"),
        Reply(500, {"Content-Type": "text/plain"}, b"upstream   exploded\n"),
    ])

    with pytest.raises(EngineError) as html_error:
        capture(snap)
    with pytest.raises(EngineError) as text_error:
        capture(snap)

    assert html_error.value.status == 502
    assert "<html>" not in html_error.value.message
    assert "Bad Gateway" in html_error.value.message
    assert text_error.value.retryable is True
    assert "upstream exploded" in text_error.value.message


def test_a_huge_error_body_gives_a_short_message(snap: SnapApiStandIn) -> None:
    snap.script([Reply(500, {"Content-Type": "text/plain"}, b"boom " * 100_000)])

    with pytest.raises(EngineError) as caught:
        capture(snap)

    assert caught.value.message.startswith("SnapAPI answered 500: boom boom")
    assert len(caught.value.message) < 400


def test_a_hanging_snapapi_times_out(snap: SnapApiStandIn) -> None:
    snap.hang = True

    started = time.monotonic()
    with pytest.raises(CaptureTimeout) as caught:
        capture(snap, timeout_ms=1000)
    elapsed = time.monotonic() - started

    assert caught.value.retryable is True
    assert 1.0 <= elapsed < 3.0  # timeout_ms + the 0.25 s margin, not the hang's length


def test_a_dropped_connection_is_retryable(snap: SnapApiStandIn) -> None:
    snap.script([DROP])

    with pytest.raises(EngineError) as caught:
        capture(snap)

    assert caught.value.retryable is True
    assert caught.value.status is None


def test_an_unreachable_snapapi_is_retryable(snap: SnapApiStandIn) -> None:
    with pytest.raises(EngineError) as caught:
        capture(snap, engine_kwargs={"base_url": f"http://127.0.0.1:{free_port()}"})

    assert caught.value.retryable is True
    assert snap.requests == []


def test_200_without_an_image_is_an_engine_error(snap: SnapApiStandIn) -> None:
    snap.script([(200, {}, {"success": False})])

    with pytest.raises(EngineError) as caught:
        capture(snap)

    assert caught.value.status == 200


def test_oversized_result_is_refused_while_streaming(snap: SnapApiStandIn) -> None:
    with pytest.raises(ResultTooLarge):
        capture(snap, engine_kwargs={"max_result_bytes": 100})


# --- Construction and lifecycle -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "http://127.0.0.1:9", "api_key": ""},
        {"base_url": "ftp://snapapi.example", "api_key": API_KEY},
        {"base_url": "not a url", "api_key": API_KEY},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SnapApiEngine(**kwargs)


def test_an_injected_client_is_used_and_left_open(snap: SnapApiStandIn) -> None:
    async def main() -> tuple[bool, int]:
        async with httpx.AsyncClient(trust_env=False) as client:
            engine = SnapApiEngine(base_url=snap.base_url, api_key=API_KEY, client=client)
            await engine.start()
            result = await engine.capture(CaptureOptions(url=PAGE_URL, width=300, height=200))
            await engine.aclose()
            return client.is_closed, len(result.data)

    closed, size = asyncio.run(main())

    assert closed is False
    assert size > 0
    assert len(snap.requests) == 1


def test_repr_hides_the_api_key() -> None:
    engine = SnapApiEngine(base_url="https://api.snapapi.pics/", api_key="sk_live_secret")

    assert "sk_live_secret" not in repr(engine)
    assert engine.endpoint == "https://api.snapapi.pics/v1/screenshot"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)

    gmt = parse_retry_after("Tue, 01 Jan 2030 12:01:30 GMT", now=now.timestamp())
    no_zone = parse_retry_after("Tue, 01 Jan 2030 12:01:30 -0000", now=now.timestamp())

    assert gmt == 90.0
    assert no_zone == 90.0


# --- The stand-in itself speaks SnapAPI's API ---------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"url": PAGE_URL, "full_page": True}, "'full_page' (did you mean 'fullPage'?)"),
        ({"url": PAGE_URL, "wait_until": "load"}, "'wait_until'"),
        ({"url": PAGE_URL, "unknownOption": 1}, "additional property 'unknownOption'"),
        ({"url": PAGE_URL, "width": "800"}, "body/width must be an integer"),
        ({"url": PAGE_URL, "width": 5000}, "body/width must be <= 3840"),
        ({"url": PAGE_URL, "height": 50}, "body/height must be >= 100"),
        ({"url": PAGE_URL, "deviceScaleFactor": 4}, "body/deviceScaleFactor must be <= 3"),
        ({"url": PAGE_URL, "fullPage": "yes"}, "body/fullPage must be a boolean"),
        ({"url": PAGE_URL, "format": "gif"}, "body/format must be one of"),
        ({"url": PAGE_URL, "timeout": 500}, "body/timeout must be >= 1000"),
        ({"url": PAGE_URL, "hideSelectors": ["a"] * 51}, "more than 50 items"),
        ({"url": PAGE_URL, "pdfOptions": {"page_size": "a4"}}, "body/pdfOptions must NOT"),
        ({"url": "ftp://example.com/"}, 'body/url must match format "uri"'),
        ({"format": "png"}, "one of 'url', 'html' or 'markdown'"),
    ],
)
def test_stand_in_rejects_what_snapapi_rejects(
    snap: SnapApiStandIn, body: dict[str, Any], expected: str
) -> None:
    response = httpx.post(snap.screenshot_url, json=body, headers={"X-Api-Key": API_KEY},
                          trust_env=False)

    assert response.status_code == 400
    payload = response.json()
    assert payload["statusCode"] == 400
    assert payload["error"] == "Bad Request"
    assert expected in payload["message"]


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "Missing API key"),
        ({"X-Api-Key": "sk_test_other"}, 401, "Invalid API key"),
        ({"Authorization": "Bearer sk_test_other"}, 401, "Invalid API key"),
        ({"Authorization": f"Bearer {API_KEY}"}, 200, None),
    ],
)
def test_stand_in_checks_the_api_key(
    snap: SnapApiStandIn, headers: dict[str, str], status: int, message: str | None
) -> None:
    response = httpx.post(snap.screenshot_url, json={"url": PAGE_URL}, headers=headers,
                          trust_env=False)

    assert response.status_code == status
    if message is not None:
        assert response.json()["message"] == message
    else:
        assert response.headers["content-type"] == "image/png"


def test_stand_in_sends_snapapis_headers(snap: SnapApiStandIn) -> None:
    with httpx.Client(trust_env=False, headers={"X-Api-Key": API_KEY}) as client:
        first = client.post(snap.screenshot_url, json={"url": PAGE_URL})
        second = client.post(snap.screenshot_url, json={"url": PAGE_URL},
                             headers={"X-Request-Id": "req-abc"})

    assert first.headers["x-request-id"].startswith("req_")
    assert second.headers["x-request-id"] == "req-abc"
    assert first.headers["x-ratelimit-limit"] == "300"
    assert int(first.headers["x-ratelimit-remaining"]) == 299
    assert int(second.headers["x-ratelimit-remaining"]) == 298
    assert int(first.headers["x-ratelimit-reset"]) > time.time() * 1000


def test_stand_in_runs_as_a_module() -> None:
    port = free_port()
    process = subprocess.Popen(
        python_command("-m", "tests.fakes.snapapi_server", "--port", str(port),
                       "--api-key", "sk_test_cli"),
        env=child_env({}),
    )
    try:
        wait_for_port(port, process=process)
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/health", trust_env=False)
        shot = httpx.post(f"{base}/v1/screenshot", json={"url": PAGE_URL, "width": 400},
                          headers={"X-Api-Key": "sk_test_cli"}, trust_env=False)
    finally:
        stop_process(process)

    assert health.json() == {"status": "ok"}
    with Image.open(io.BytesIO(shot.content)) as image:
        assert image.size == (400, 800)
    assert process.returncode == 0

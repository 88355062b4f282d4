"""Each capture option's SnapAPI mapping, asserted on the requests the stand-in receives
(the stand-in refuses any key or value its copy of SnapAPI's spec does not allow)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.devices import DEVICES, Device
from shared.engine_capabilities import SNAPAPI_OPTIONS, check_engine_supports, unsupported_options
from shared.errors import EngineRejected, OptionNotSupported
from shared.jobs import CaptureOptions
from tests.fakes.snapapi_server import DEVICES as SNAPAPI_DEVICES
from tests.fakes.snapapi_server import SnapApiStandIn
from worker.engines.base import Capture
from worker.engines.snapapi import SNAPAPI_FIELDS, SnapApiEngine, snapapi_request_body

API_KEY = "sk_test_options"
PAGE_URL = "https://example.com/page"
BASE = {"url": PAGE_URL, "format": "png", "timeout": 30000}


@pytest.fixture(scope="module")
def snap_server() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def snap(snap_server: SnapApiStandIn) -> Iterator[SnapApiStandIn]:
    snap_server.reset()
    yield snap_server


def capture(snap: SnapApiStandIn, **fields: Any) -> Capture:
    """One capture of ``PAGE_URL`` through a fresh engine (raises unless the stand-in,
    which validates the body against the spec, answered 200)."""

    async def main() -> Capture:
        engine = SnapApiEngine(base_url=snap.base_url, api_key=API_KEY, timeout_margin=0.25)
        try:
            return await engine.capture(CaptureOptions(url=PAGE_URL, **fields))
        finally:
            await engine.aclose()

    return asyncio.run(main())


def test_every_page_option_is_sent_in_camel_case(snap: SnapApiStandIn) -> None:
    capture(
        snap, width=600, height=900, landscape=True, is_mobile=True, has_touch=True,
        block_ads=True, block_trackers=True, block_cookie_banners=True,
        hide_selectors=[".ad", "#chat"], block_resources=["image", "font"],
        css="body { color: red }", js="document.title = 'x'", click_selector="#more",
        user_agent="ShotlineTest/1.0", headers={"X-Test": "1"},
        cookies=[{"name": "session", "value": "abc", "domain": "example.com"},
                 {"name": "plain", "value": "v"}],
        http_auth={"username": "alice", "password": "s3cret"},
        locale="de-DE", timezone="Europe/Berlin", reduced_motion=True,
        clip={"x": 10, "y": 20, "width": 300, "height": 200},
    )
    assert snap.bodies == [{
        **BASE,
        "width": 900, "height": 600,  # landscape turned the viewport; no isLandscape
        "isMobile": True, "hasTouch": True,
        "blockAds": True, "blockTrackers": True, "blockCookieBanners": True,
        "hideSelectors": [".ad", "#chat"], "blockResources": ["image", "font"],
        "css": "body { color: red }", "javascript": "document.title = 'x'",
        "clickSelector": "#more", "userAgent": "ShotlineTest/1.0",
        "extraHeaders": {"X-Test": "1"},
        "cookies": [{"name": "session", "value": "abc", "domain": "example.com", "path": "/"},
                    {"name": "plain", "value": "v", "path": "/"}],
        "httpAuth": {"username": "alice", "password": "s3cret"},
        "locale": "de-DE", "timezone": "Europe/Berlin", "reducedMotion": True,
        "clipX": 10, "clipY": 20, "clipWidth": 300, "clipHeight": 200,
    }]


def _media_box(pdf: bytes) -> tuple[int, int]:
    match = re.search(rb"/MediaBox \[0 0 (\d+) (\d+)\]", pdf)
    assert match is not None
    return int(match.group(1)), int(match.group(2))


def test_pdf_options_are_sent_in_camel_case(snap: SnapApiStandIn) -> None:
    result = capture(snap, format="pdf", pdf_options={
        "page_size": "a4", "landscape": True, "print_background": False, "scale": 0.5,
        "margin_top": "10mm", "margin_bottom": "1in", "margin_left": "0px",
        "margin_right": "2.5cm", "page_ranges": "1-2, 4",
    })
    assert snap.bodies[0]["pdfOptions"] == {
        "pageSize": "a4", "landscape": True, "printBackground": False, "scale": 0.5,
        "marginTop": "10mm", "marginBottom": "1in", "marginLeft": "0px",
        "marginRight": "2.5cm", "pageRanges": "1-2, 4",
    }
    assert _media_box(result.data) == (842, 595)  # the stand-in prints A4 landscape
    capture(snap, format="pdf", pdf_options={"page_size": "letter"})
    assert snap.bodies[1]["pdfOptions"] == {
        "pageSize": "letter", "landscape": False, "printBackground": True, "scale": 1.0,
    }


def test_every_preset_is_a_snapapi_device() -> None:
    assert {device.value for device in Device} <= set(SNAPAPI_DEVICES)
    assert len(DEVICES) >= 12


def test_device_presets_are_left_to_snapapi(snap: SnapApiStandIn) -> None:
    capture(snap, device="iphone-15-pro")
    capture(snap, device="iphone-15-pro", landscape=True)
    capture(snap, device="pixel-8", width=500, user_agent="Custom/1")
    capture(snap, device="desktop-1080p", is_mobile=True)
    assert snap.bodies == [
        {**BASE, "device": "iphone-15-pro"},
        {**BASE, "device": "iphone-15-pro", "isLandscape": True},
        {**BASE, "device": "pixel-8", "width": 500, "userAgent": "Custom/1"},
        {**BASE, "device": "desktop-1080p", "isMobile": True},
    ]


def test_thumbnail_width_is_applied_by_shotline_not_sent(snap: SnapApiStandIn) -> None:
    body = snapapi_request_body(CaptureOptions(url=PAGE_URL, thumbnail_width=200))
    assert "thumbnail" not in body and "thumbnailWidth" not in body
    assert unsupported_options(CaptureOptions(url=PAGE_URL, thumbnail_width=200)) == []


def test_quality_options_snapapi_has_are_sent(snap: SnapApiStandIn) -> None:
    capture(snap, block_chats=True, fail_if_content_missing=["Price"],
            fail_if_content_contains=["Access denied", "captcha"])
    assert snap.bodies == [{
        **BASE, "width": 1280, "height": 800,
        "blockChatWidgets": True, "failIfContentMissing": ["Price"],
        "failIfContentContains": ["Access denied", "captcha"],
    }]


@pytest.mark.parametrize(
    ("fields", "unsupported"),
    [
        ({"omit_background": True}, ["omit_background"]),
        ({"block_resources": ["image", "eventsource"]}, ["block_resources.1"]),
        ({"cookies": [{"name": "a", "value": "b", "http_only": True, "same_site": "Lax"}]},
         ["cookies.0.http_only", "cookies.0.same_site"]),
        ({"device": "ipad", "block_ads": True, "pdf_options": None}, []),
        ({"remove_selectors": [".x"], "scroll_to": "#a", "hover": "#b",
          "wait_for_function": "window.ok", "retry_if_blank": True, "block_chats": True},
         ["remove_selectors", "scroll_to", "hover", "wait_for_function", "retry_if_blank"]),
    ],
)
def test_options_snapapi_cannot_honour(
    snap: SnapApiStandIn, fields: dict[str, Any], unsupported: list[str]
) -> None:
    options = CaptureOptions(url=PAGE_URL, **fields)
    assert unsupported_options(options) == unsupported
    check_engine_supports("chromium", options)  # Chromium honours everything
    if not unsupported:
        check_engine_supports("snapapi", options)
        return
    with pytest.raises(OptionNotSupported) as refused:
        check_engine_supports("snapapi", options)
    assert refused.value.fields == unsupported
    with pytest.raises(EngineRejected, match="cannot honour"):
        capture(snap, **fields)
    assert snap.requests == []  # refused before calling SnapAPI


def test_capability_table_names_the_options_the_wire_mapping_sends() -> None:
    # The API refuses from shared.engine_capabilities; the engine sends SNAPAPI_FIELDS.
    assert {field.option for field in SNAPAPI_FIELDS} == SNAPAPI_OPTIONS

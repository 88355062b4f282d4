"""Validation of the capture options (pure: no browser, no servers)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from shared.devices import DEVICES, Device
from shared.jobs import CaptureOptions, ImageFormat
from worker.engines.page_setup import context_options, cookie_params, page_css, pdf_options
from worker.thumbnail import thumbnail

URL = "https://example.com/"


def options(**fields: Any) -> CaptureOptions:
    return CaptureOptions(url=URL, **fields)


def test_device_preset_fills_what_the_request_left_out() -> None:
    phone = options(device="iphone-15-pro")
    preset = DEVICES[Device.iphone_15_pro]
    assert (phone.width, phone.height, phone.device_scale_factor) == (393, 852, 3)
    assert phone.is_mobile and phone.has_touch and phone.user_agent == preset.user_agent
    turned = options(device="iphone-15-pro", landscape=True)
    assert (turned.width, turned.height) == (852, 393)
    custom = options(device="iphone-15-pro", width=500, has_touch=False)
    assert (custom.width, custom.height, custom.has_touch) == (500, 852, False)


def test_validation_is_idempotent_for_stored_options() -> None:
    for stored in (options(device="ipad", landscape=True), options(width=400, height=900,
                                                                   landscape=True)):
        again = CaptureOptions.model_validate(stored.model_dump(mode="json"))
        assert again == stored
        assert again.width > again.height


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"device": "nokia-3310"}, "device"),
        ({"hide_selectors": ["x"] * 51}, "hide_selectors"),
        ({"hide_selectors": [""]}, "hide_selectors.0"),
        ({"block_resources": ["document"]}, "block_resources.0"),
        ({"css": "a" * 100_001}, "css"),
        ({"js": "a" * 100_001}, "js"),
        ({"headers": {"Bad Name": "x"}}, "headers.Bad Name.[key]"),
        ({"headers": {"Host": "evil.example"}}, "headers.Host.[key]"),
        ({"headers": {"X-A": "line\r\nbreak"}}, "headers.X-A"),
        ({"cookies": [{"name": "a"}]}, "cookies.0.value"),
        ({"cookies": [{"name": "a", "value": "b", "path": "no-slash"}]}, "cookies.0.path"),
        ({"http_auth": {"username": "a"}}, "http_auth.password"),
        ({"locale": "not a locale"}, "locale"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"format": "pdf", "pdf_options": {"page_size": "b5"}}, "pdf_options.page_size"),
        ({"format": "pdf", "pdf_options": {"scale": 3}}, "pdf_options.scale"),
        ({"format": "pdf", "pdf_options": {"margin_top": "1 furlong"}}, "pdf_options.margin_top"),
        ({"format": "pdf", "pdf_options": {"page_ranges": "1-; rm"}}, "pdf_options.page_ranges"),
        ({"clip": {"x": -1, "y": 0, "width": 10, "height": 10}}, "clip.x"),
        ({"thumbnail_width": 8}, "thumbnail_width"),
    ],
)
def test_bad_values_name_their_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        options(**fields)
    locations = [".".join(str(p) for p in error["loc"]) for error in caught.value.errors()]
    assert field in locations, locations


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pdf_options": {"page_size": "a4"}}, "pdf_options apply to format pdf only"),
        ({"clip": {"x": 0, "y": 0, "width": 5, "height": 5}, "selector": "#a"}, "clip cannot"),
        ({"format": "jpeg", "omit_background": True}, "omit_background applies"),
        ({"format": "pdf", "thumbnail_width": 100}, "thumbnail_width applies"),
    ],
)
def test_impossible_combinations_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        options(**fields)


def test_job_views_redact_secrets() -> None:
    secret = options(http_auth={"username": "alice", "password": "s3cret"},
                     cookies=[{"name": "session", "value": "abc"}])
    shown = secret.redacted()
    assert shown.http_auth is not None and shown.http_auth.password == "***"
    assert shown.http_auth.username == "alice" and shown.cookies[0].value == "***"
    assert secret.http_auth is not None and secret.http_auth.password == "s3cret"


def test_browser_context_settings() -> None:
    kwargs = context_options(options(
        device="pixel-8", locale="fr-FR", timezone="Europe/Paris", reduced_motion=True,
        headers={"X-A": "1"}, http_auth={"username": "u", "password": "p"}, css="a{}",
    ))
    assert kwargs["viewport"] == {"width": 412, "height": 915}
    assert (kwargs["is_mobile"], kwargs["has_touch"], kwargs["device_scale_factor"]) == (
        True, True, 2.625)
    assert (kwargs["locale"], kwargs["timezone_id"], kwargs["reduced_motion"]) == (
        "fr-FR", "Europe/Paris", "reduce")
    assert kwargs["extra_http_headers"] == {"X-A": "1"}
    assert kwargs["http_credentials"] == {"username": "u", "password": "p",
                                          "origin": "https://example.com"}
    assert kwargs["bypass_csp"] is True
    assert "bypass_csp" not in context_options(options())


def test_cookies_default_to_the_pages_url() -> None:
    params = cookie_params(options(cookies=[
        {"name": "a", "value": "1"},
        {"name": "b", "value": "2", "domain": ".example.org", "path": "/x", "secure": True,
         "same_site": "Strict"},
    ]))
    assert params[0] == {"name": "a", "value": "1", "secure": False, "httpOnly": False,
                         "url": "https://example.com/"}
    assert params[1] == {"name": "b", "value": "2", "secure": True, "httpOnly": False,
                         "domain": ".example.org", "path": "/x", "sameSite": "Strict"}


def test_page_css_and_pdf_settings() -> None:
    assert page_css(options()) is None
    assert page_css(options(hide_selectors=["#a", ".b"], css="p{}")) == (
        "#a { display: none !important; }\n.b { display: none !important; }\np{}")
    assert pdf_options(options(format="pdf")) == {"print_background": True}
    assert pdf_options(options(format="pdf", pdf_options={
        "page_size": "legal", "margin_left": "5mm", "page_ranges": "2"})) == {
        "print_background": True, "landscape": False, "scale": 1, "format": "Legal",
        "margin": {"left": "5mm"}, "page_ranges": "2"}


@pytest.mark.parametrize("fmt", [ImageFormat.png, ImageFormat.jpeg, ImageFormat.webp])
def test_thumbnail_keeps_format_and_aspect(fmt: ImageFormat) -> None:
    source = Image.new("RGBA" if fmt is ImageFormat.png else "RGB", (1200, 900), (255, 0, 0))
    out = io.BytesIO()
    source.save(out, fmt.value.upper())
    small = Image.open(io.BytesIO(thumbnail(out.getvalue(), fmt, 300)))
    assert small.size == (300, 225) and small.format == fmt.value.upper()
    assert thumbnail(out.getvalue(), fmt, 2000) == out.getvalue()  # never scaled up

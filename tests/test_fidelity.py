"""The fidelity suite: capture options against real Chromium and local pages written for
them (tests/pages/fidelity), each checked on the picture's pixels with Pillow.

One engine (one browser) serves the whole module on one event loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageChops

from shared.errors import HttpErrorStatus, PageScriptFailed, SelectorNotFound
from shared.jobs import CaptureOptions
from tests.servers import LOOPBACK_POLICY, PageServer
from worker.engines import blocking
from worker.engines.base import Capture
from worker.engines.chromium import ChromiumEngine
from worker.engines.filter_lists import FilterList

WHITE = (255, 255, 255)
RED = (255, 0, 0)
BLUE = (0, 0, 255)
MAGENTA = (255, 0, 255)
GREEN = (0, 128, 0)


class Shooter:
    """Captures local pages with the module's engine."""

    def __init__(self, engine: ChromiumEngine, runner: asyncio.Runner, pages: PageServer) -> None:
        self.engine, self.runner, self.pages = engine, runner, pages

    def capture(self, path: str, **fields: Any) -> Capture:
        options = CaptureOptions(url=self.pages.url(path), **fields)
        return self.runner.run(self.engine.capture(options))

    def image(self, path: str, **fields: Any) -> Image.Image:
        return picture(self.capture(path, **fields))


@pytest.fixture(scope="module")
def shooter(page_server: PageServer) -> Iterator[Shooter]:
    with asyncio.Runner() as runner:
        engine = ChromiumEngine(policy=LOOPBACK_POLICY, max_result_bytes=50_000_000)
        runner.run(engine.start())
        try:
            yield Shooter(engine, runner, page_server)
        finally:
            runner.run(engine.aclose())


def picture(capture: Capture) -> Image.Image:
    image = Image.open(io.BytesIO(capture.data))
    image.load()
    return image


def rgb(image: Image.Image, x: int, y: int) -> tuple[int, ...]:
    return tuple(image.convert("RGB").getpixel((x, y)))  # type: ignore[arg-type]


def count(image: Image.Image, color: tuple[int, int, int]) -> int:
    colors = image.convert("RGB").getcolors(maxcolors=10_000_000) or []
    return sum(n for n, c in colors if c == color)


def env(capture: Capture) -> dict[str, Any]:
    """What tests/pages/fidelity/env.html saw of its browser (it writes it to its title)."""
    assert capture.title is not None
    report: dict[str, Any] = json.loads(capture.title)
    return report


def media_box(pdf: bytes) -> tuple[float, float]:
    """Width and height in points of the first page of a PDF Chromium printed."""
    match = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert match is not None, pdf[:400]
    return round(float(match.group(1))), round(float(match.group(2)))


# --- Full page --------------------------------------------------------------------------


def test_full_page_shows_lazy_images_and_scroll_triggered_content(shooter: Shooter) -> None:
    shot = shooter.image("/fidelity/lazy.html", width=400, height=300, full_page=True)
    assert shot.size == (400, 6700)
    assert rgb(shot, 150, 1500) == RED  # loading=lazy, 1400 px below the fold
    assert rgb(shot, 150, 3100) == BLUE
    assert rgb(shot, 150, 4700) == MAGENTA
    assert rgb(shot, 150, 6300) == (0, 160, 0)  # turned green by an IntersectionObserver
    assert count(shot, RED) == count(shot, BLUE) == count(shot, MAGENTA) == 300 * 200


def test_full_page_respects_max_height_after_scrolling(shooter: Shooter) -> None:
    shot = shooter.image("/fidelity/lazy.html", width=400, height=300, full_page=True,
                         max_height=3300)
    assert shot.size == (400, 3300)
    assert count(shot, RED) == count(shot, BLUE) == 300 * 200


def test_sticky_header_appears_once_at_the_top(shooter: Shooter) -> None:
    shot = shooter.image("/fidelity/sticky.html", width=400, height=300, full_page=True)
    shot = shot.convert("RGB")
    assert shot.size == (400, 50 + 3 * 1010)
    header_rows = [y for y in range(shot.height) if rgb(shot, 200, y) == MAGENTA]
    assert header_rows == list(range(50))
    assert rgb(shot, 200, 55) == BLUE and rgb(shot, 200, 2075) == BLUE  # the blocks' borders


# --- Fonts ---------------------------------------------------------------------------------


def _colourful(image: Image.Image) -> int:
    """Pixels with strong colour (emoji are drawn in colour, tofu and text in grey)."""
    _hue, saturation, value = image.convert("RGB").convert("HSV").split()
    strong = ImageChops.multiply(saturation.point(lambda s: 255 if s > 100 else 0),
                                 value.point(lambda v: 255 if v > 100 else 0))
    return strong.histogram()[255]


def _ink(image: Image.Image) -> int:
    """Dark pixels (text drawn in black on white)."""
    return sum(image.convert("L").histogram()[:128])


@pytest.fixture(scope="module")
def glyphs(shooter: Shooter) -> dict[str, Image.Image]:
    """fonts.html's five 80x80 cells (emoji, 永, 鬱, 한, an unassigned code point), from one
    capture."""
    shot = shooter.image("/fidelity/fonts.html", width=600, height=200)
    names = ("emoji", "cjk1", "cjk2", "hangul", "missing")
    return {name: shot.crop((80 * i, 0, 80 * i + 80, 80)) for i, name in enumerate(names)}


def test_emoji_render_in_colour(glyphs: dict[str, Image.Image]) -> None:
    assert _colourful(glyphs["emoji"]) > 500
    assert _colourful(glyphs["missing"]) == 0


def test_cjk_and_hangul_render_as_glyphs_not_boxes(glyphs: dict[str, Image.Image]) -> None:
    for name in ("cjk1", "cjk2", "hangul"):
        assert _ink(glyphs[name]) > 150, name
        # A missing glyph draws the same box whatever the character: real glyphs differ.
        assert ImageChops.difference(glyphs[name], glyphs["missing"]).getbbox() is not None
    assert ImageChops.difference(glyphs["cjk1"], glyphs["cjk2"]).getbbox() is not None


# --- Cookie banners -----------------------------------------------------------------------


def test_cookie_banner_is_accepted(shooter: Shooter) -> None:
    before = shooter.capture("/fidelity/consent.html", width=800, height=600)
    assert rgb(picture(before), 400, 550) == MAGENTA
    after = shooter.capture("/fidelity/consent.html", width=800, height=600,
                            block_cookie_banners=True)
    shot = picture(after)
    assert count(shot, MAGENTA) == 0
    assert rgb(shot, 100, 100) == BLUE
    assert after.title == "accepted"  # clicked "Accept all", not just hidden


def test_cookie_overlay_without_button_is_hidden(shooter: Shooter) -> None:
    before = shooter.image("/fidelity/overlay.html", width=800, height=600)
    assert rgb(before, 400, 400) != WHITE
    shot = shooter.image("/fidelity/overlay.html", width=800, height=600,
                         block_cookie_banners=True)
    assert rgb(shot, 100, 100) == BLUE
    assert rgb(shot, 400, 400) == WHITE


# --- Devices and browser environment ---------------------------------------------------------


def test_device_preset_sets_size_touch_and_user_agent(shooter: Shooter) -> None:
    capture = shooter.capture("/fidelity/env.html", device="iphone-15-pro")
    assert picture(capture).size == (393 * 3, 852 * 3)
    seen = env(capture)
    assert "iPhone" in seen["ua"]
    assert seen["width"] == 393 and seen["touch"] and seen["coarse"]
    turned = shooter.capture("/fidelity/env.html", device="iphone-15-pro", landscape=True)
    assert picture(turned).size == (852 * 3, 393 * 3)
    desktop = shooter.capture("/fidelity/env.html", device="desktop-1080p")
    assert picture(desktop).size == (1920, 1080)
    assert not env(desktop)["touch"]


def test_explicit_fields_override_the_preset(shooter: Shooter) -> None:
    capture = shooter.capture("/fidelity/env.html", device="pixel-8", width=500,
                              device_scale_factor=1, user_agent="ShotlineTest/1.0")
    assert picture(capture).size == (500, 915)
    assert env(capture)["ua"] == "ShotlineTest/1.0"
    assert env(capture)["touch"]  # still the preset's


def test_locale_timezone_media_headers_and_cookies(shooter: Shooter) -> None:
    capture = shooter.capture(
        "/fidelity/env.html?probe=environment", locale="de-DE", timezone="Asia/Tokyo",
        reduced_motion=True, dark_mode=True, user_agent="ShotlineTest/2.0",
        headers={"X-Shotline-Test": "yes"},
        cookies=[{"name": "session", "value": "abc123"}],
    )
    seen = env(capture)
    assert (seen["lang"], seen["tz"], seen["ua"]) == ("de-DE", "Asia/Tokyo", "ShotlineTest/2.0")
    assert seen["reduced"] and seen["dark"]
    assert seen["cookie"] == "session=abc123"
    [headers] = [h for path, h in shooter.pages.headers_seen if "probe=environment" in path]
    assert headers["X-Shotline-Test"] == "yes"
    assert headers["Cookie"] == "session=abc123"
    assert headers["Accept-Language"].startswith("de-DE")
    assert headers["User-Agent"] == "ShotlineTest/2.0"


def test_http_basic_auth(shooter: Shooter) -> None:
    path = "/basic-auth?user=alice&password=s3cret"
    with pytest.raises(HttpErrorStatus, match="401") as caught:
        shooter.capture(path)
    assert caught.value.status == 401
    with pytest.raises(HttpErrorStatus, match="401"):
        shooter.capture(path, http_auth={"username": "alice", "password": "wrong"})
    capture = shooter.capture(path, http_auth={"username": "alice", "password": "s3cret"})
    assert capture.http_status == 200


def test_result_metadata_follows_redirects(shooter: Shooter) -> None:
    capture = shooter.capture(f"/redirect?to={shooter.pages.url('/index.html')}")
    assert capture.final_url == shooter.pages.url("/index.html")
    assert (capture.http_status, capture.title) == (200, "Shotline test page")


# --- Blocking -----------------------------------------------------------------------------


def test_block_ads_refuses_listed_hosts_and_counts_them(
    shooter: Shooter, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = FilterList("ads", "||localhost^")
    monkeypatch.setattr(blocking, "lists_for", lambda options: (listed,) if options.block_ads else ())
    plain = shooter.capture("/fidelity/ads.html", width=400, height=600)
    assert count(picture(plain), RED) == 300 * 250 and plain.blocked_requests == 0

    ad_requests = len([p for p in shooter.pages.requests if "ad=1" in p])
    blocked = shooter.capture("/fidelity/ads.html", width=400, height=600, block_ads=True)
    shot = picture(blocked)
    assert count(shot, RED) == 0
    assert count(shot, BLUE) == 300 * 250  # first-party content stays
    assert blocked.blocked_requests == 1
    assert len([p for p in shooter.pages.requests if "ad=1" in p]) == ad_requests


def test_shipped_blocklist_refuses_real_ad_and_tracker_hosts(shooter: Shooter) -> None:
    capture = shooter.capture("/fidelity/adnetwork.html", block_ads=True, block_trackers=True)
    assert capture.blocked_requests == 2  # doubleclick.net (ads), google-analytics.com


def test_block_resources_by_type(shooter: Shooter) -> None:
    capture = shooter.capture("/fidelity/ads.html", width=400, height=600,
                              block_resources=["image"])
    shot = picture(capture)
    assert count(shot, RED) == count(shot, BLUE) == 0
    assert capture.blocked_requests == 2
    sockets = shooter.capture("/index.html", block_resources=["websocket", "font"])
    assert count(picture(sockets), RED) == 300 * 200 and sockets.blocked_requests == 0


# --- Page control ---------------------------------------------------------------------------


def test_hide_selectors_css_and_js(shooter: Shooter) -> None:
    assert count(shooter.image("/index.html", width=400, height=400), RED) == 300 * 200
    hidden = shooter.image("/index.html", width=400, height=400, hide_selectors=["#box", "h1"])
    assert count(hidden, RED) == 0
    styled = shooter.image("/index.html", width=400, height=400,
                           css="html, body { background: rgb(0, 0, 255) !important; }")
    assert rgb(styled, 5, 5) == BLUE
    scripted = shooter.capture(
        "/index.html", width=400, height=400,
        js="await new Promise(r => setTimeout(r, 50));"
           " document.getElementById('box').style.background = 'rgb(0, 128, 0)';"
           " document.title = 'scripted';",
    )
    assert count(picture(scripted), GREEN) == 300 * 200 and scripted.title == "scripted"


def test_failing_js_is_a_permanent_script_error(shooter: Shooter) -> None:
    with pytest.raises(PageScriptFailed, match="threw Error: boom;") as caught:
        shooter.capture("/index.html", js="throw new Error('boom')")
    assert caught.value.code == "script_error" and not caught.value.retryable
    # In the page's terms, not Playwright's ("Page.evaluate: Error: boom").
    assert "evaluate" not in caught.value.message and "Page." not in caught.value.message
    with pytest.raises(PageScriptFailed, match="threw SyntaxError: ") as syntax:
        shooter.capture("/index.html", js="this is not javascript(")
    assert "evaluate" not in syntax.value.message
    with pytest.raises(PageScriptFailed, match='threw "plain";'):
        shooter.capture("/index.html", js="throw 'plain'")


def test_click_selector(shooter: Shooter) -> None:
    assert count(shooter.image("/fidelity/click.html", width=500, height=400), GREEN) == 0
    clicked = shooter.image("/fidelity/click.html", width=500, height=400, click_selector="#more")
    assert count(clicked, GREEN) == 400 * 200
    with pytest.raises(SelectorNotFound, match="#absent"):
        shooter.capture("/fidelity/click.html", click_selector="#absent")


# --- Output ---------------------------------------------------------------------------------


def test_clip_captures_exactly_the_rectangle(shooter: Shooter) -> None:
    shot = shooter.image("/fidelity/transparent.html", clip={"x": 10, "y": 20, "width": 50,
                                                             "height": 60})
    assert shot.size == (50, 60) and count(shot, RED) == 50 * 60
    below = shooter.image("/tall.html", width=400, height=300, full_page=True,
                          clip={"x": 0, "y": 2100, "width": 100, "height": 100})
    assert below.size == (100, 100) and count(below, (255, 255, 0)) == 100 * 100


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_omit_background_is_transparent(shooter: Shooter, fmt: str) -> None:
    opaque = shooter.image("/fidelity/transparent.html", width=300, height=200, format=fmt)
    assert opaque.convert("RGBA").getpixel((200, 150)) == (255, 255, 255, 255)
    clear = shooter.image("/fidelity/transparent.html", width=300, height=200, format=fmt,
                          omit_background=True)
    assert clear.mode == "RGBA"
    assert clear.getpixel((200, 150))[3] == 0  # type: ignore[index]
    assert clear.getpixel((50, 50)) == (255, 0, 0, 255)


def test_pdf_options_change_the_page(shooter: Shooter) -> None:
    assert media_box(shooter.capture("/index.html", format="pdf").data) == (612, 792)  # Letter
    a4 = shooter.capture("/index.html", format="pdf", pdf_options={"page_size": "a4"})
    assert media_box(a4.data) == (596, 843)
    turned = shooter.capture("/index.html", format="pdf",
                             pdf_options={"page_size": "a5", "landscape": True,
                                          "margin_top": "10mm", "scale": 0.8,
                                          "print_background": False, "page_ranges": "1"})
    assert media_box(turned.data) == (596, 420)
    assert turned.data.count(b"/Type /Page\n") + turned.data.count(b"/Type /Page ") <= 1

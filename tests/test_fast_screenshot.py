"""The fast PNG path (``Page.captureScreenshot`` with ``optimizeForSpeed``) gives exactly
the pixels of Playwright's own screenshot: both decoded with Pillow and compared."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest
from PIL import Image, ImageChops

from shared.jobs import CaptureOptions, ImageFormat
from tests.servers import LOOPBACK_POLICY, PageServer
from worker.engines.chromium import ChromiumEngine
from worker.engines.output import takes_fast_path

#: Pages with text, colours, web fonts, a focused input (its caret), sticky and fixed parts.
PAGES = [
    "/index.html",
    "/tall.html",
    "/fidelity/fonts.html",
    "/fidelity/sticky.html",
    "/fidelity/overlay.html",
    "/focused.html",
]


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[asyncio.Runner, ChromiumEngine, ChromiumEngine]]:
    fast = ChromiumEngine(policy=LOOPBACK_POLICY, max_result_bytes=10**8, fast_screenshot=True)
    plain = ChromiumEngine(policy=LOOPBACK_POLICY, max_result_bytes=10**8,
                           fast_screenshot=False)
    with asyncio.Runner() as runner:
        try:
            yield runner, fast, plain
        finally:
            runner.run(fast.aclose())
            runner.run(plain.aclose())


def pixels(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.convert("RGBA")


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("size", [(1280, 800), (375, 667)])
def test_fast_png_has_the_pixels_of_playwrights_screenshot(
    engines: tuple[asyncio.Runner, ChromiumEngine, ChromiumEngine],
    page_server: PageServer,
    path: str,
    size: tuple[int, int],
) -> None:
    runner, fast, plain = engines
    url = page_server.url(path)
    width, height = size
    options = CaptureOptions(url=url, width=width, height=height)
    assert takes_fast_path(options)
    quick = runner.run(fast.capture(options))
    slow = runner.run(plain.capture(options))
    assert quick.data != slow.data  # really two encoders (the fast one compresses less)
    a, b = pixels(quick.data), pixels(slow.data)
    assert a.size == b.size == size
    assert ImageChops.difference(a, b).getbbox() is None, f"pixels differ on {path}"


@pytest.mark.parametrize("fields", [
    {"full_page": True}, {"device_scale_factor": 2}, {"is_mobile": True},
    {"format": ImageFormat.jpeg}, {"omit_background": True}, {"selector": "#box"},
])
def test_other_captures_keep_playwrights_screenshot(fields: dict[str, object]) -> None:
    assert not takes_fast_path(CaptureOptions(url="http://example.com/", **fields))

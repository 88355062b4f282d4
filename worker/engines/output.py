"""What a ``chromium`` capture produces from the prepared page: the PDF, an element's
screenshot, or the (full-)page screenshot, bounded in size.

Viewport PNG screenshots take a faster path when the engine allows it
(:func:`fast_png_screenshot`): Chromium's ``Page.captureScreenshot`` with
``optimizeForSpeed``, which only changes how the PNG is compressed (a faster zlib level,
a somewhat larger file), never a pixel. It does what Playwright's own screenshot does
around the capture (carets hidden, web fonts waited for) so the pixels are the same ones
Playwright would produce; ``tests/test_fast_screenshot.py`` compares them decoded.
"""

from __future__ import annotations

import base64
import contextlib
import math
from typing import Final, Literal

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import FloatRect, Page

from shared.constants import MAX_CAPTURE_PIXELS, MAX_FULL_PAGE_HEIGHT, MAX_FULL_PAGE_WIDTH
from shared.errors import SelectorNotFound
from shared.jobs import CaptureOptions, ImageFormat
from worker.engines.browser import first_line
from worker.engines.capture_run import CaptureRun
from worker.engines.page_setup import pdf_options

ScreenshotType = Literal["png", "jpeg", "webp"]

#: Playwright's screenshot ``type`` per image format (PDF goes through ``page.pdf``).
SCREENSHOT_TYPES: Final[dict[ImageFormat, ScreenshotType]] = {
    ImageFormat.png: "png",
    ImageFormat.jpeg: "jpeg",
    ImageFormat.webp: "webp",
}

#: The page's scrollable size in CSS pixels, measured the way Playwright's full-page
#: screenshots measure it.
PAGE_SIZE_JS: Final = """() => {
  const d = document.documentElement, b = document.body || d;
  return [
    Math.max(d.scrollWidth, d.offsetWidth, d.clientWidth, b.scrollWidth, b.offsetWidth),
    Math.max(d.scrollHeight, d.offsetHeight, d.clientHeight, b.scrollHeight, b.offsetHeight),
  ];
}"""

#: An element's rectangle in document coordinates (CSS pixels): x, y, width, height.
ELEMENT_RECT_JS: Final = """element => {
  const r = element.getBoundingClientRect();
  return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height];
}"""

#: In each frame, what Playwright's screenshot does before capturing: text carets made
#: transparent (they blink: a screenshot would show them or not by chance), then web fonts
#: waited for (at most 3 s: a font whose server never answers must not hang the capture).
#: Nothing is restored: the context is closed after the capture. Returns the
#: visual viewport (document offset and pinch zoom), which the clip is made of.
PREPARE_FOR_SCREENSHOT_JS: Final = """async () => {
  for (const el of document.querySelectorAll('input,textarea,[contenteditable]'))
    el.style.setProperty('caret-color', 'transparent', 'important');
  await Promise.race([document.fonts.ready, new Promise(r => setTimeout(r, 3000))]);
  const v = window.visualViewport;
  return v ? [v.pageLeft, v.pageTop, v.scale] : [window.scrollX, window.scrollY, 1];
}"""


def takes_fast_path(options: CaptureOptions) -> bool:
    """Whether :func:`fast_png_screenshot` can take this capture: a PNG of the viewport
    (no full page, clip, element or transparent background, which Playwright handles), at
    a device scale factor of 1 and not emulating a phone: a CDP session of our own does not
    share Playwright's device emulation, which decides how those are scaled."""
    return (
        options.format is ImageFormat.png
        and options.device_scale_factor == 1
        and not options.is_mobile
        and not options.full_page
        and options.clip is None
        and options.selector is None
        and not options.omit_background
    )


async def output(page: Page, run: CaptureRun, *, fast_screenshot: bool) -> bytes:
    """The PDF, the element screenshot or the (full-)page screenshot ``run`` asks for."""
    options = run.options
    if options.format is ImageFormat.pdf:
        run.stage = "printing the PDF"
        return await page.pdf(**pdf_options(options))
    image_type = SCREENSHOT_TYPES[options.format]
    if options.selector is not None:
        return await _element_screenshot(page, run, image_type, options.selector)
    run.stage = "taking the screenshot"
    if fast_screenshot and takes_fast_path(options):
        return await fast_png_screenshot(page)
    clip: FloatRect | None = None
    if options.clip is not None:
        clip = {"x": options.clip.x, "y": options.clip.y,
                "width": options.clip.width, "height": options.clip.height}
        if options.full_page:  # beyond the viewport: bounded like a full page
            clip = bounded_clip(clip, max_height=None, scale=options.device_scale_factor)
    elif options.full_page:
        clip = await _max_height_clip(page, options)
    return await page.screenshot(
        type=image_type,
        quality=options.quality,
        full_page=options.full_page,
        clip=clip,
        omit_background=options.omit_background,
        timeout=run.remaining_ms(),
    )


async def fast_png_screenshot(page: Page) -> bytes:
    """The viewport as PNG, through ``Page.captureScreenshot`` with ``optimizeForSpeed``.

    Same pixels as ``page.screenshot(type="png")`` (see the module's docstring), for less
    CPU: Chromium's default PNG compression costs more than the rest of the capture step.
    """
    for frame in page.frames:
        if frame is not page.main_frame:
            with contextlib.suppress(PlaywrightError):  # a frame detached meanwhile
                await frame.evaluate(PREPARE_FOR_SCREENSHOT_JS)
    x, y, zoom = await page.main_frame.evaluate(PREPARE_FOR_SCREENSHOT_JS)
    viewport = page.viewport_size or {"width": 0, "height": 0}
    # Playwright's clip: the viewport at its place in the document, in CSS pixels, at the
    # visual viewport's scale (the device scale factor then applies as it does there).
    clip = {
        "x": x, "y": y, "scale": zoom,
        "width": math.floor(viewport["width"] / zoom + 1e-3),
        "height": math.floor(viewport["height"] / zoom + 1e-3),
    }
    session = await page.context.new_cdp_session(page)
    try:
        reply = await session.send(
            "Page.captureScreenshot",
            {"format": "png", "optimizeForSpeed": True, "captureBeyondViewport": False,
             "clip": clip},
        )
    finally:
        with contextlib.suppress(PlaywrightError):
            await session.detach()
    return base64.b64decode(reply["data"])


async def _element_screenshot(
    page: Page, run: CaptureRun, image_type: ScreenshotType, selector: str
) -> bytes:
    """A screenshot of the first visible element ``selector`` matches, at its own size."""
    run.stage = "capturing the selector's element"
    element = page.locator(selector).first
    try:
        if await element.count() == 0:
            raise SelectorNotFound(f"no element matches selector {selector!r}")
        if not await element.is_visible():
            raise SelectorNotFound(f"the element selector {selector!r} matches is not visible")
    except PlaywrightError as exc:
        raise selector_error(exc, "selector", selector) from exc
    await element.scroll_into_view_if_needed(timeout=run.remaining_ms())
    x, y, width, height = await element.evaluate(ELEMENT_RECT_JS)
    # Playwright's element screenshots take the enclosing integer rectangle, a pixel wider
    # or taller than the element whenever it sits at a fractional position; rounding gives
    # the element's own size. Clips of full-page screenshots are in document coordinates,
    # so elements beyond the viewport work too.
    clip: FloatRect = {
        "x": round(x),
        "y": round(y),
        "width": max(round(width), 1),
        "height": max(round(height), 1),
    }
    return await page.screenshot(
        type=image_type,
        quality=run.options.quality,
        full_page=True,
        clip=clip,
        omit_background=run.options.omit_background,
        timeout=run.remaining_ms(),
    )


async def _max_height_clip(page: Page, options: CaptureOptions) -> FloatRect | None:
    """The part of the page a full-page capture takes (see :func:`full_page_clip`)."""
    width, height = await page.evaluate(PAGE_SIZE_JS)
    if not options.full_width:  # one overflowing element must not widen the picture
        width = min(width, options.width)
    return full_page_clip(
        width, height, max_height=options.max_height, scale=options.device_scale_factor
    )


def full_page_clip(
    width: int, height: int, *, max_height: int | None, scale: float
) -> FloatRect | None:
    """The top of a ``width`` x ``height`` page (CSS pixels) a full-page capture keeps, or
    None when it keeps the whole page (see :func:`bounded_clip`)."""
    kept = bounded_clip(
        {"x": 0, "y": 0, "width": width, "height": height}, max_height=max_height, scale=scale
    )
    return None if (kept["width"], kept["height"]) == (width, height) else kept


def bounded_clip(clip: FloatRect, *, max_height: int | None, scale: float) -> FloatRect:
    """``clip`` cut to at most ``max_height`` (else :data:`MAX_FULL_PAGE_HEIGHT`) CSS pixels
    tall, :data:`MAX_FULL_PAGE_WIDTH` wide and :data:`MAX_CAPTURE_PIXELS` device pixels
    (``scale`` is the device scale factor): a capture beyond the viewport (a full page, or
    a clip in one) cannot make a screenshot of unbounded size, whatever the page's size.
    """
    width = min(clip["width"], MAX_FULL_PAGE_WIDTH)
    height = min(
        clip["height"],
        max_height or MAX_FULL_PAGE_HEIGHT,
        int(MAX_CAPTURE_PIXELS / (max(width, 1) * scale * scale)),
    )
    return {"x": clip["x"], "y": clip["y"], "width": width, "height": height}


def selector_error(exc: PlaywrightError, option: str, selector: str) -> Exception:
    """A :class:`SelectorNotFound` for an unusable selector; other errors unchanged."""
    message = first_line(exc.message)
    if "selector" in message.lower():
        return SelectorNotFound(f"{option} {selector!r} is not a valid selector: {message}")
    return exc

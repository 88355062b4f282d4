"""The ``chromium`` engine: captures with a local headless Chromium driven by Playwright.

One browser per engine (per worker process, see :mod:`worker.engines.browser`), a fresh
browser context per capture: no cookies, storage or cache pass from one job to the next.
Each capture is bounded by its ``timeout_ms`` as a hard limit, and its context is closed
whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import structlog
from playwright.async_api import BrowserContext, FloatRect, Page, Response
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from shared.errors import (
    CaptureError,
    CaptureTimeout,
    EngineError,
    HttpErrorStatus,
    NavigationFailed,
    ResultTooLarge,
    SelectorNotFound,
)
from shared.jobs import CaptureOptions, ImageFormat, WaitUntil
from worker.engines.base import Capture
from worker.engines.blocking import RequestBlocker
from worker.engines.browser import SharedBrowser, first_line
from worker.engines.cookie_banners import dismiss_cookie_banners
from worker.engines.page_ready import MAX_SCROLL_HEIGHT, scroll_through, wait_for_assets
from worker.engines.page_setup import (
    click,
    context_options,
    pdf_options,
    prepare_context,
    run_script,
    style_page,
)

log = structlog.get_logger("shotline.engines.chromium")

ScreenshotType = Literal["png", "jpeg", "webp"]
PlaywrightWaitUntil = Literal["domcontentloaded", "load", "networkidle"]

#: Playwright's screenshot ``type`` per image format (PDF goes through ``page.pdf``).
SCREENSHOT_TYPES: Final[dict[ImageFormat, ScreenshotType]] = {
    ImageFormat.png: "png",
    ImageFormat.jpeg: "jpeg",
    ImageFormat.webp: "webp",
}

#: Playwright's ``wait_until`` per :class:`WaitUntil`.
WAIT_UNTIL: Final[dict[WaitUntil, PlaywrightWaitUntil]] = {
    WaitUntil.load: "load",
    WaitUntil.domcontentloaded: "domcontentloaded",
    WaitUntil.networkidle: "networkidle",
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

#: The stage in which running out of time means the selector never matched.
WAITING_FOR_SELECTOR: Final = "waiting for wait_for_selector"

_NET_ERROR = re.compile(r"net::ERR_[A-Z0-9_]+")


@dataclass(slots=True)
class _Run:
    """One capture in progress: its options, its deadline and what it is doing now."""

    options: CaptureOptions
    deadline: float
    stage: str = field(default="opening a browser context (starting Chromium if needed)")

    def remaining_ms(self) -> float:
        """Milliseconds left before the deadline (at least 1: Playwright reads 0 as 'none')."""
        return max((self.deadline - asyncio.get_running_loop().time()) * 1000, 1.0)

    def timeout_error(self) -> CaptureError:
        """The error for running out of time in the current stage."""
        if self.stage == WAITING_FOR_SELECTOR:
            return SelectorNotFound(
                f"no element matched wait_for_selector {self.options.wait_for_selector!r} "
                f"within {self.options.timeout_ms} ms"
            )
        return CaptureTimeout(
            f"capture did not finish within {self.options.timeout_ms} ms "
            f"(still {self.stage})"
        )


class ChromiumEngine:
    """Captures pages with headless Chromium (Playwright's async API).

    ``executable_path`` None means Playwright's own Chromium when installed, else the
    system's; ``no_sandbox`` None means ``--no-sandbox`` only when running as root.
    Results larger than ``max_result_bytes`` raise :class:`ResultTooLarge`. The browser is
    relaunched after ``recycle_after`` captures or beyond ``recycle_rss_mb`` MB of memory.
    """

    name = "chromium"

    def __init__(
        self,
        *,
        executable_path: str | None = None,
        no_sandbox: bool | None = None,
        max_result_bytes: int,
        recycle_after: int | None = None,
        recycle_rss_mb: int | None = None,
    ) -> None:
        if no_sandbox is None:
            no_sandbox = os.geteuid() == 0
        self.max_result_bytes = max_result_bytes
        self._browser = SharedBrowser(
            executable_path=executable_path,
            no_sandbox=no_sandbox,
            recycle_after=recycle_after,
            recycle_rss_bytes=None if recycle_rss_mb is None else recycle_rss_mb * 2**20,
        )

    @property
    def open_contexts(self) -> int:
        """Browser contexts open right now: one per capture in progress, 0 when idle."""
        return self._browser.open_contexts

    @property
    def launches(self) -> int:
        """Browsers launched so far (relaunches after crashes and recycling included)."""
        return self._browser.launches

    async def start(self) -> None:
        """Start Playwright and launch Chromium. Idempotent.

        Raises:
            ConfigurationError: no usable Chromium binary.
            EngineError: Chromium failed to start.
        """
        await self._browser.start()

    async def aclose(self) -> None:
        """Close Chromium and stop Playwright; no browser process survives it."""
        await self._browser.aclose()

    async def capture(self, options: CaptureOptions, *, request_id: str | None = None) -> Capture:
        """Capture ``options.url`` in a fresh browser context, within ``options.timeout_ms``.

        Raises:
            CaptureTimeout: the whole capture took longer than ``timeout_ms``.
            NavigationFailed: the page could not be loaded (DNS, refused, TLS, download...).
            HttpErrorStatus: the main document answered 4xx/5xx.
            SelectorNotFound: ``selector`` or ``wait_for_selector`` matched nothing.
            EngineError: the renderer crashed or the browser went away (retryable).
            ResultTooLarge: the output is larger than ``max_result_bytes``.
        """
        if not self._browser.started:
            await self.start()
        loop = asyncio.get_running_loop()
        run = _Run(options, deadline=loop.time() + options.timeout_ms / 1000)
        creating: asyncio.Future[BrowserContext] | None = None
        try:
            async with asyncio.timeout_at(run.deadline):
                creating = asyncio.ensure_future(self._browser.new_context(
                    lambda browser: browser.new_context(**context_options(options))
                ))
                # Shielded: a context created after the deadline is still closed below.
                context = await asyncio.shield(creating)
                capture = await self._capture_in(context, run, request_id)
        except TimeoutError as exc:
            raise run.timeout_error() from exc
        except PlaywrightTimeoutError as exc:
            raise run.timeout_error() from exc
        except PlaywrightError as exc:
            raise EngineError(
                f"Chromium failed while {run.stage}: {first_line(exc.message)}"
            ) from exc
        finally:
            if creating is not None:
                await self._browser.close_context(creating)
        if len(capture.data) > self.max_result_bytes:
            raise ResultTooLarge(
                f"the capture is {len(capture.data)} bytes, "
                f"above the limit of {self.max_result_bytes} bytes"
            )
        return capture

    async def _capture_in(
        self, context: BrowserContext, run: _Run, request_id: str | None
    ) -> Capture:
        """Render in ``context``, racing the work against a renderer crash."""
        context.set_default_timeout(run.remaining_ms())
        run.stage = "setting up the browser context"
        blocker = RequestBlocker(run.options)
        await blocker.install(context)
        await prepare_context(context, run.options)
        run.stage = "opening a page"
        page = await context.new_page()
        crashed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        page.on("crash", lambda _page: None if crashed.done() else crashed.set_result(None))
        work = asyncio.ensure_future(self._render(page, run, blocker))
        racers: set[asyncio.Future[Any]] = {work, crashed}
        try:
            await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if crashed.done() or _mentions_crash(work):
            log.warning(
                "The page's renderer crashed.",
                url=run.options.url, stage=run.stage, request_id=request_id,
            )
            if not work.cancelled():
                work.exception()  # retrieved: the crash is what gets reported
            raise EngineError(f"the page's renderer crashed while {run.stage}")
        return work.result()

    async def _render(self, page: Page, run: _Run, blocker: RequestBlocker) -> Capture:
        """Load the page, prepare it as asked, then take the screenshot or print the PDF."""
        options = run.options
        run.stage = "loading the page"
        response = await _navigate(page, run)
        status = response.status if response is not None else None
        if status is not None and status >= 400:
            raise HttpErrorStatus(f"the page answered HTTP {status}", status=status)
        await _prepare_page(page, run)
        data = await _output(page, run)
        run.stage = "reading the page title"
        title = await page.title()
        return Capture(
            data=data,
            content_type=options.format.content_type,
            final_url=page.url,
            http_status=status,
            title=title or None,
            blocked_requests=blocker.blocked,
        )


async def _prepare_page(page: Page, run: _Run) -> None:
    """Between load and capture: CSS, JS, the click, waits, full-page scrolling, cookie
    banners, then images and fonts, in that order."""
    options = run.options
    run.stage = "injecting css"
    await style_page(page, options)
    if options.js is not None:
        run.stage = "running the js option"
        await run_script(page, options.js)
    if options.click_selector is not None:
        run.stage = "clicking click_selector"
        await click(page, options.click_selector, timeout_ms=min(run.remaining_ms(), 5000))
    if options.wait_for_selector is not None:
        run.stage = WAITING_FOR_SELECTOR
        try:
            await page.wait_for_selector(
                options.wait_for_selector, state="visible", timeout=run.remaining_ms()
            )
        except PlaywrightTimeoutError as exc:
            raise run.timeout_error() from exc
        except PlaywrightError as exc:
            raise _selector_error(exc, "wait_for_selector", options.wait_for_selector) from exc
    if options.full_page:
        run.stage = "scrolling through the page"
        await scroll_through(page, max_height=options.max_height, remaining_ms=run.remaining_ms())
    if options.delay_ms:
        run.stage = "waiting delay_ms"
        await asyncio.sleep(options.delay_ms / 1000)
    if options.block_cookie_banners:
        run.stage = "dismissing cookie banners"
        await dismiss_cookie_banners(page, timeout_ms=run.remaining_ms())
    run.stage = "waiting for images and fonts"
    limit = (options.max_height or MAX_SCROLL_HEIGHT) if options.full_page else options.height
    await wait_for_assets(page, limit=limit, remaining_ms=run.remaining_ms())


async def _navigate(page: Page, run: _Run) -> Response | None:
    """``page.goto`` with Playwright's errors turned into Shotline's."""
    url = run.options.url
    try:
        return await page.goto(
            url, wait_until=WAIT_UNTIL[run.options.wait_until], timeout=run.remaining_ms()
        )
    except PlaywrightTimeoutError:
        raise
    except PlaywrightError as exc:
        message = first_line(exc.message)
        net_error = _NET_ERROR.search(message)
        if net_error is not None and net_error.group(0) == "net::ERR_INVALID_AUTH_CREDENTIALS":
            raise HttpErrorStatus(
                "the page answered HTTP 401: it needs (other) http_auth credentials", status=401
            ) from exc
        if net_error is not None:
            raise NavigationFailed(f"could not load {url}: {net_error.group(0)}") from exc
        if "Download is starting" in message:
            raise NavigationFailed(f"{url} starts a download instead of showing a page") from exc
        raise


async def _output(page: Page, run: _Run) -> bytes:
    """The PDF, the element screenshot or the (full-)page screenshot ``run`` asks for."""
    options = run.options
    if options.format is ImageFormat.pdf:
        run.stage = "printing the PDF"
        return await page.pdf(**pdf_options(options))
    image_type = SCREENSHOT_TYPES[options.format]
    if options.selector is not None:
        return await _element_screenshot(page, run, image_type, options.selector)
    run.stage = "taking the screenshot"
    clip: FloatRect | None = None
    if options.clip is not None:
        clip = {"x": options.clip.x, "y": options.clip.y,
                "width": options.clip.width, "height": options.clip.height}
    elif options.full_page:
        clip = await _max_height_clip(page, options.max_height)
    return await page.screenshot(
        type=image_type,
        quality=options.quality,
        full_page=options.full_page,
        clip=clip,
        omit_background=options.omit_background,
        timeout=run.remaining_ms(),
    )


async def _element_screenshot(
    page: Page, run: _Run, image_type: ScreenshotType, selector: str
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
        raise _selector_error(exc, "selector", selector) from exc
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


async def _max_height_clip(page: Page, max_height: int | None) -> FloatRect | None:
    """The top ``max_height`` CSS pixels of the page, or None when the page is not taller."""
    if max_height is None:
        return None
    width, height = await page.evaluate(PAGE_SIZE_JS)
    if height <= max_height:
        return None
    return {"x": 0, "y": 0, "width": width, "height": max_height}


def _selector_error(exc: PlaywrightError, option: str, selector: str) -> Exception:
    """A :class:`SelectorNotFound` for an unusable selector; other errors unchanged."""
    message = first_line(exc.message)
    if "selector" in message.lower():
        return SelectorNotFound(f"{option} {selector!r} is not a valid selector: {message}")
    return exc


def _mentions_crash(work: asyncio.Future[Capture]) -> bool:
    """Whether ``work`` failed because the page crashed (the error can beat the event)."""
    if not work.done() or work.cancelled():
        return False
    exc = work.exception()
    return isinstance(exc, PlaywrightError) and "crash" in exc.message.lower()

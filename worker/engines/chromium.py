"""The ``chromium`` engine: captures with a local headless Chromium driven by Playwright.

One browser per engine (per worker process, see :mod:`worker.engines.browser`), a fresh
browser context per capture: no cookies, storage or cache pass from one job to the next.
Contexts are opened ahead of demand (:mod:`worker.engines.warm_contexts`) so that opening
one overlaps the previous capture; each still serves exactly one capture. Each capture is
bounded by its ``timeout_ms`` as a hard limit, and its context is closed whatever happens.
Each context reaches the network only through an egress gate of its own
(:mod:`worker.engines.egress`) that enforces the URL policy on every connection; a refused
top-level navigation fails the capture with ``url_blocked`` (:mod:`worker.engines.navigation`).
What the capture produces (screenshot or PDF) is :mod:`worker.engines.output`'s part.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any, Final, Literal

import structlog
from playwright.async_api import BrowserContext, Page, ProxySettings, Response
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from shared.errors import (
    CaptureUrlBlocked,
    EngineError,
    HttpErrorStatus,
    NavigationFailed,
    ResultTooLarge,
)
from shared.jobs import CaptureOptions, WaitUntil
from shared.url_policy import AsyncResolver, UrlPolicy
from worker.engines import page_quality
from worker.engines.base import Capture
from worker.engines.blocking import RequestBlocker
from worker.engines.browser import CLOSE_GRACE_S, NO_PROXY_BYPASS, SharedBrowser, first_line
from worker.engines.capture_run import WAITING_FOR_SELECTOR, CaptureRun
from worker.engines.cookie_banners import dismiss_cookie_banners
from worker.engines.document import document_html, load_document
from worker.engines.egress import EgressGate
from worker.engines.navigation import NavigationGuard
from worker.engines.output import bounded_clip, full_page_clip, output, selector_error
from worker.engines.page_actions import park_mouse
from worker.engines.page_outputs import read_page_outputs
from worker.engines.page_ready import MAX_SCROLL_HEIGHT, scroll_through, wait_for_assets
from worker.engines.page_setup import (
    click,
    context_options,
    prepare_context,
    run_script,
    style_page,
)
from worker.engines.scroll_video import record_scroll_video
from worker.engines.warm_contexts import WarmContexts

__all__ = ["ChromiumEngine", "bounded_clip", "full_page_clip"]

log = structlog.get_logger("shotline.engines.chromium")

PlaywrightWaitUntil = Literal["domcontentloaded", "load", "networkidle"]

#: Playwright's ``wait_until`` per :class:`WaitUntil`.
WAIT_UNTIL: Final[dict[WaitUntil, PlaywrightWaitUntil]] = {
    # Then a bounded wait for load (a hanging web font holds it back forever) and, for
    # networkidle, one that ignores long-lived connections (page_quality.after_load).
    WaitUntil.load: "domcontentloaded",
    WaitUntil.domcontentloaded: "domcontentloaded",
    WaitUntil.networkidle: "domcontentloaded",
}

_NET_ERROR = re.compile(r"net::ERR_[A-Z0-9_]+")

#: What Chromium reports for any connection the SOCKS proxy (the egress gate) did not open.
PROXIED_NET_ERRORS: Final = frozenset({
    "net::ERR_SOCKS_CONNECTION_FAILED",
    "net::ERR_SOCKS_CONNECTION_HOST_UNREACHABLE",
    "net::ERR_PROXY_CONNECTION_FAILED",
})


class ChromiumEngine:
    """Captures pages with headless Chromium (Playwright's async API).

    ``executable_path`` None means Playwright's own Chromium when installed, else the
    system's; ``no_sandbox`` None means ``--no-sandbox`` only when running as root.
    Every connection the page makes is checked with ``policy``, its host resolved with
    ``resolver`` (default ``getaddrinfo``). Results larger than ``max_result_bytes`` raise
    :class:`ResultTooLarge`. The browser is relaunched after ``recycle_after`` captures or
    beyond ``recycle_rss_mb`` MB of memory. ``js_heap_mb`` caps each renderer's JavaScript
    heap and ``memory_mb`` the memory (data) of each Chromium process. ``warm_contexts``
    contexts are kept open ahead of demand (0: each capture opens its own);
    ``fast_screenshot`` takes viewport PNGs through the faster encoder (same pixels);
    ``ffmpeg_path`` is the encoder of scroll videos (default: ``ffmpeg`` on ``PATH``).
    """

    name = "chromium"

    def __init__(
        self,
        *,
        policy: UrlPolicy,
        resolver: AsyncResolver | None = None,
        executable_path: str | None = None,
        no_sandbox: bool | None = None,
        max_result_bytes: int,
        recycle_after: int | None = None,
        recycle_rss_mb: int | None = None,
        js_heap_mb: int | None = None,
        memory_mb: int | None = None,
        warm_contexts: int = 1,
        fast_screenshot: bool = True,
        ffmpeg_path: str | None = None,
    ) -> None:
        if no_sandbox is None:
            no_sandbox = os.geteuid() == 0
        self.max_result_bytes = max_result_bytes
        self._policy = policy
        self._resolver = resolver
        self._browser = SharedBrowser(
            executable_path=executable_path,
            no_sandbox=no_sandbox,
            recycle_after=recycle_after,
            recycle_rss_bytes=None if recycle_rss_mb is None else recycle_rss_mb * 2**20,
            js_heap_mb=js_heap_mb,
            memory_mb=memory_mb,
        )
        self._fast_screenshot = fast_screenshot
        self._ffmpeg_path = ffmpeg_path
        self._warm = WarmContexts(
            self._browser, policy=policy, resolver=resolver, size=warm_contexts
        )

    @property
    def open_contexts(self) -> int:
        """Browser contexts open right now: one per capture in progress, 0 when idle."""
        return self._browser.open_contexts

    @property
    def warm(self) -> WarmContexts:
        """The contexts opened ahead of demand (with their hit and miss counts)."""
        return self._warm

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
        self._warm.refill()

    async def aclose(self) -> None:
        """Close the warm contexts, Chromium and Playwright; no browser process survives it."""
        try:
            await self._warm.aclose()
        finally:
            await self._browser.aclose()

    async def capture(self, options: CaptureOptions, *, request_id: str | None = None) -> Capture:
        """Capture ``options.url`` in a fresh browser context, within ``options.timeout_ms``.

        Raises:
            CaptureTimeout: the whole capture took longer than ``timeout_ms``.
            CaptureUrlBlocked: the page's own navigation (the URL, a redirect, a script's
                ``location`` change) went to an address the policy refuses.
            NavigationFailed: the page could not be loaded (DNS, refused, TLS, download...).
            HttpErrorStatus: the main document answered 4xx/5xx.
            SelectorNotFound: ``selector`` or ``wait_for_selector`` matched nothing.
            EngineError: the renderer crashed or the browser went away (retryable).
            ResultTooLarge: the output is larger than ``max_result_bytes``.
        """
        if not self._browser.started:
            await self.start()
        loop = asyncio.get_running_loop()
        run = CaptureRun(options, deadline=loop.time() + options.timeout_ms / 1000)
        creating: asyncio.Future[BrowserContext] | None = None
        warm = await self._warm.take(options)
        if warm is not None:
            gate, page = warm.gate, warm.page
            gate.request_id = request_id
            creating = loop.create_future()
            creating.set_result(warm.context)
        else:
            gate, page = await self._open_gate(request_id), None
        try:
            async with asyncio.timeout_at(run.deadline):
                if creating is None:
                    creating = asyncio.ensure_future(self._open_context(options, gate))
                # Shielded: a context created after the deadline is still closed below.
                context = await asyncio.shield(creating)
                self._warm.refill()  # a relaunched browser is warmed from now on
                capture = await self._capture_in(context, page, run, request_id, gate)
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
            # A context still closing in the background loses its way out here: fail-closed.
            await gate.aclose()
        capture.blocked_requests += gate.blocked
        if len(capture.data) > self.max_result_bytes:
            raise ResultTooLarge(
                f"the capture is {len(capture.data)} bytes, "
                f"above the limit of {self.max_result_bytes} bytes"
            )
        return capture

    async def _open_gate(self, request_id: str | None) -> EgressGate:
        gate = EgressGate(self._policy, resolver=self._resolver, request_id=request_id)
        await gate.start()
        return gate

    async def _open_context(self, options: CaptureOptions, gate: EgressGate) -> BrowserContext:
        """A context of its own for one capture, reaching the network only through ``gate``."""
        proxy: ProxySettings = {"server": gate.proxy_server, "bypass": NO_PROXY_BYPASS}
        return await self._browser.new_context(
            lambda browser: browser.new_context(**context_options(options), proxy=proxy)
        )

    async def _capture_in(
        self,
        context: BrowserContext,
        page: Page | None,
        run: CaptureRun,
        request_id: str | None,
        gate: EgressGate,
    ) -> Capture:
        """Render in ``context`` (in ``page`` when it was opened ahead), racing the work
        against a renderer crash and a refused top-level navigation."""
        context.set_default_timeout(run.remaining_ms())
        run.stage = "setting up the browser context"
        blocker = RequestBlocker(run.options)
        await blocker.install(context)
        await prepare_context(context, run.options)
        if page is None:
            run.stage = "opening a page"
            page = await context.new_page()
        crashed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        page.on("crash", lambda _page: None if crashed.done() else crashed.set_result(None))
        guard = NavigationGuard(page, gate)
        await page_quality.before_navigation(page, run)
        work = asyncio.ensure_future(self._render(page, run, blocker, guard))
        racers: set[asyncio.Future[Any]] = {work, crashed, guard.blocked}
        try:
            await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not work.done():
                work.cancel()
                # Bounded: a call stuck in a wedged renderer must not hold the capture past
                # its limit; closing the context (below, in capture()) ends it anyway.
                await asyncio.wait({work}, timeout=CLOSE_GRACE_S)
        if crashed.done() or _mentions_crash(work):
            log.warning(
                "The page's renderer crashed.",
                url=run.options.url, stage=run.stage, request_id=request_id,
            )
            if not work.cancelled():
                work.exception()  # retrieved: the crash is what gets reported
            raise EngineError(f"the page's renderer crashed while {run.stage}")
        if guard.blocked.done():
            if not work.cancelled():
                work.exception()  # retrieved: the refused navigation is what gets reported
            log.warning(
                "The page navigated to a refused address.",
                url=run.options.url, stage=run.stage, request_id=request_id,
                reason=guard.blocked.result(),
            )
            raise CaptureUrlBlocked(guard.blocked.result())
        return work.result()

    async def _render(
        self, page: Page, run: CaptureRun, blocker: RequestBlocker, guard: NavigationGuard
    ) -> Capture:
        """Load the page, prepare it as asked, then take the screenshot or print the PDF."""
        options = run.options
        run.stage = "loading the page"
        document = document_html(options)
        if document is None:
            response = await _navigate(page, run, guard)
        else:
            response = await load_document(page, run, document)
        status = response.status if response is not None else None
        if status is not None and status >= 400:
            raise HttpErrorStatus(f"the page answered HTTP {status}", status=status)

        async def prepare() -> None:
            await park_mouse(page)
            await page_quality.after_load(page, run)
            await _prepare_page(page, run)
            await page_quality.before_capture(page, run, blocker.lists)

        await page_quality.through_navigations(page, run, prepare)
        video = None
        if options.format.is_video:
            video = await record_scroll_video(page, run, ffmpeg=self._ffmpeg_path)
            data = video.data
        else:
            data = await output(page, run, fast_screenshot=self._fast_screenshot)
        run.stage = "reading the page title"
        title = await page.title()
        capture = Capture(
            data=data,
            content_type=options.format.content_type,
            final_url=page.url,
            http_status=status,
            title=title or None,
            blocked_requests=blocker.blocked,
        )
        await read_page_outputs(page, run, response, capture)
        if video is not None:
            capture.width, capture.height = video.width, video.height
            capture.duration_ms, capture.poster = video.duration_ms, video.poster
            return capture
        return await page_quality.after_capture(page, run, capture, retake=lambda: output(
            page, run, fast_screenshot=self._fast_screenshot))


async def _prepare_page(page: Page, run: CaptureRun) -> None:
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
            raise selector_error(exc, "wait_for_selector", options.wait_for_selector) from exc
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


async def _navigate(page: Page, run: CaptureRun, guard: NavigationGuard) -> Response | None:
    """``page.goto`` with Playwright's errors turned into Shotline's."""
    url = run.options.url or "about:blank"  # documents load through worker.engines.document
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
            error = net_error.group(0)
            if error in PROXIED_NET_ERRORS:
                refusal = guard.refusal(url)
                if refusal is not None:
                    raise CaptureUrlBlocked(refusal) from exc
                error = guard.network_error() or error
            raise NavigationFailed(f"could not load {url}: {error}") from exc
        if "Download is starting" in message:
            raise NavigationFailed(f"{url} starts a download instead of showing a page") from exc
        raise


def _mentions_crash(work: asyncio.Future[Capture]) -> bool:
    """Whether ``work`` failed because the page crashed (the error can beat the event)."""
    if not work.done() or work.cancelled():
        return False
    exc = work.exception()
    return isinstance(exc, PlaywrightError) and "crash" in exc.message.lower()

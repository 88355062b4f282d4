"""The capture-quality steps of the ``chromium`` engine, called from
:mod:`worker.engines.chromium` at fixed points of a capture:

- :func:`before_navigation`, once the page exists: what must be in place when the page's
  own scripts run (popups refused and counted, the page's ``window.print()`` made a no-op,
  the network followed for ``networkidle``, the consent-banner watch).
- :func:`after_load` (the page is navigated to DOMContentLoaded): the bounded waits for
  ``load`` and ``networkidle``, and ``wait_for_function``.
- :func:`before_capture`, once the page is prepared (after the consent-manager rules):
  the consent heuristics, the filter lists' element hiding (``block_ads``,
  ``block_chats``), ``remove_selectors``, ``scroll_to``, the content checks, ``hover``.
- :func:`through_navigations` runs the preparing steps again on the page the browser
  ends on when the page navigates itself meanwhile (a script redirect after load).
- :func:`after_capture`, with the picture: blank detection (``retry_if_blank``), popups
  counted, a full-page picture cut by a size cap reported (``result.truncated``), notes.

Each step is its own module; this one only says in which order they run.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog
from PIL import Image
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from shared.jobs import CaptureOptions, WaitUntil
from worker.engines.base import Capture
from worker.engines.blank import is_blank
from worker.engines.browser import first_line
from worker.engines.capture_run import CaptureRun
from worker.engines.consent_heuristics import dismiss_consent_overlays, watch_for_consent_banners
from worker.engines.element_hiding import hide_listed_elements
from worker.engines.filter_lists import FilterList
from worker.engines.output import PAGE_SIZE_JS
from worker.engines.page_actions import check_content, hover, remove_elements, scroll_to
from worker.engines.waits import (
    NetworkIdle,
    wait_for_function,
    wait_for_load,
    wait_for_network_idle,
)

log = structlog.get_logger("shotline.engines.page_quality")

#: How long ``retry_if_blank`` waits before the second picture (at most half the time left).
BLANK_RETRY_WAIT_MS: Final = 3000
#: Most times the preparing steps start again because the page navigated itself.
MAX_SELF_NAVIGATIONS: Final = 3
#: Longest wait for the page a script navigated to.
SELF_NAVIGATION_LOAD_MS: Final = 10_000
#: Playwright's words when the page went away under an evaluation.
_NAVIGATED: Final = ("Execution context was destroyed", "because of a navigation",
                     "frame was detached", "Navigation interrupted")

#: Before the page's scripts: popups (window.open, target=_blank links) refused at once and
#: counted, the page's own print dialog a no-op (it would keep Chromium from printing the PDF).
GUARD_JS: Final = """(() => {
  let refused = 0;
  const refuse = function () { refused += 1; return null; };
  Object.defineProperty(window, '__shotlinePopups', {get: () => refused, configurable: false});
  window.open = refuse;
  // A link to a new window is refused here too, before the browser makes a page for it (the
  // popup handler below stays for what this misses, such as forms with a target).
  addEventListener('click', (event) => {
    const link = event.target instanceof Element ? event.target.closest('a[target], area[target]') : null;
    if (link && link.target.toLowerCase() === '_blank') { event.preventDefault(); refused += 1; }
  }, true);
  window.print = function () {};
})();"""


@dataclass(slots=True)
class PageWatch:
    """What the steps keep between hooks for one capture."""

    idle: NetworkIdle | None = None
    popups_closed: int = 0
    closing: set[asyncio.Future[None]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _watch(run: CaptureRun) -> PageWatch:
    if not isinstance(run.quality, PageWatch):
        run.quality = PageWatch()
    return run.quality


async def before_navigation(page: Page, run: CaptureRun) -> None:
    """What must be installed before the page loads."""
    watch = _watch(run)
    await page.add_init_script(script=GUARD_JS)

    def close_popup(popup: Page) -> None:
        watch.popups_closed += 1
        closing = asyncio.ensure_future(_close_quietly(popup))
        watch.closing.add(closing)
        closing.add_done_callback(watch.closing.discard)

    page.on("popup", close_popup)
    if run.options.wait_until is WaitUntil.networkidle:
        watch.idle = NetworkIdle(page)
    if run.options.block_cookie_banners:
        await watch_for_consent_banners(page)


async def _close_quietly(popup: Page) -> None:
    with contextlib.suppress(PlaywrightError):
        await popup.close()


async def after_load(page: Page, run: CaptureRun) -> None:
    """Once the page has loaded: the bounded network-idle wait, then ``wait_for_function``."""
    watch = _watch(run)
    if run.options.wait_until is not WaitUntil.domcontentloaded:
        run.stage = "loading the page"
        _note(watch, await wait_for_load(page, run))
    if watch.idle is not None:
        run.stage = "waiting for the network to be idle"
        _note(watch, await wait_for_network_idle(watch.idle, run))
    if run.options.wait_for_function is not None:
        run.stage = "waiting for wait_for_function"
        await wait_for_function(page, run.options.wait_for_function, run)


def _note(watch: PageWatch, note: str | None) -> None:
    if note is not None and note not in watch.notes:
        log.info("A wait hit its cap; capturing anyway.", note=note)
        watch.notes.append(note)


async def before_capture(page: Page, run: CaptureRun, lists: Sequence[FilterList]) -> None:
    """The last changes to the page before its picture is taken."""
    options = run.options
    if options.block_cookie_banners:
        run.stage = "dismissing consent banners"
        await dismiss_consent_overlays(page)
    hiding = [listed for listed in lists if listed.category in ("ads", "chats")]
    if hiding:
        run.stage = "hiding listed elements"
        await hide_listed_elements(page, hiding)
    if options.remove_selectors:
        run.stage = "removing remove_selectors"
        await remove_elements(page, options.remove_selectors)
    if options.scroll_to is not None:
        run.stage = "scrolling to scroll_to"
        await scroll_to(page, options.scroll_to, timeout_ms=min(run.remaining_ms(), 5000))
    if options.fail_if_content_contains or options.fail_if_content_missing:
        run.stage = "checking the page's content"
        await check_content(page, contains=options.fail_if_content_contains,
                            missing=options.fail_if_content_missing)
    if options.hover is not None:
        run.stage = "hovering over hover"
        await hover(page, options.hover, timeout_ms=min(run.remaining_ms(), 5000))


async def through_navigations(
    page: Page, run: CaptureRun, steps: Callable[[], Awaitable[None]]
) -> None:
    """Run ``steps``; when the page navigates itself under them (a script redirect, a
    ``location`` change in a timer), wait for the page it goes to and run them again there,
    a few times at most. The capture then shows, and reports, the page the browser ends on."""
    for attempt in range(MAX_SELF_NAVIGATIONS + 1):
        try:
            await steps()
            return
        except PlaywrightError as exc:
            message = first_line(exc.message)
            if attempt == MAX_SELF_NAVIGATIONS or not any(w in message for w in _NAVIGATED):
                raise
        run.stage = "following the page's own navigation"
        log.info("The page navigated itself after load; preparing the new page.", url=page.url)
        with contextlib.suppress(PlaywrightTimeoutError):
            await page.wait_for_load_state(
                "load", timeout=max(min(run.remaining_ms() / 2, SELF_NAVIGATION_LOAD_MS), 1))
        note = "the page navigated itself after load; captured the page it ended on"
        if note not in _watch(run).notes:
            _watch(run).notes.append(note)


async def after_capture(
    page: Page, run: CaptureRun, capture: Capture, *, retake: Callable[[], Awaitable[bytes]]
) -> Capture:
    """Flag a blank picture (with ``retry_if_blank``, wait and take it once more), count the
    refused popups and add the notes of the earlier steps."""
    watch = _watch(run)
    fmt = run.options.format
    capture.blank = await asyncio.to_thread(is_blank, capture.data, fmt)
    if capture.blank and run.options.retry_if_blank:
        wait_ms = min(BLANK_RETRY_WAIT_MS, run.remaining_ms() / 2)
        log.info("The picture is blank; waiting and capturing once more.", wait_ms=round(wait_ms))
        run.stage = "waiting to capture a blank page again"
        await asyncio.sleep(wait_ms / 1000)
        capture.data = await retake()
        capture.blank = await asyncio.to_thread(is_blank, capture.data, fmt)
        watch.notes.append(
            f"retry_if_blank: the first picture was blank; captured again after {round(wait_ms)} ms"
            + (" (still blank)" if capture.blank else "")
        )
    refused = 0
    with contextlib.suppress(PlaywrightError):
        refused = int(await page.evaluate("() => window.__shotlinePopups || 0"))
    capture.popups_blocked = refused + watch.popups_closed
    if capture.popups_blocked:
        log.info("Popups refused.", popups=capture.popups_blocked)
    if run.options.full_page and capture.blank is not None:
        with contextlib.suppress(PlaywrightError):
            capture.truncated = truncation(
                await page.evaluate(PAGE_SIZE_JS), capture.data, run.options)
    if capture.truncated is not None:
        log.info("The full-page picture was cut by a size cap.", **capture.truncated)
    capture.final_url = page.url or capture.final_url
    capture.notes.extend(watch.notes)
    return capture


def truncation(page_size: list[int], data: bytes, options: CaptureOptions) -> dict[str, int] | None:
    """The page's real size and the picture's (CSS px) when a cap cut a full-page picture
    (its height, or with ``full_width`` its width), else None."""
    page_width, page_height = page_size
    with Image.open(io.BytesIO(data)) as image:  # reads the header only
        width, height = (round(side / options.device_scale_factor) for side in image.size)
    cut = page_height > height + 1 or (options.full_width and page_width > width + 1)
    if not cut:
        return None
    return {"page_width": page_width, "page_height": page_height, "width": width, "height": height}

"""The capture-quality steps of the ``chromium`` engine, called from
:mod:`worker.engines.chromium` at fixed points of a capture:

- :func:`before_navigation`, once the page exists: scripts that must be in place when the
  page's own run (the consent-banner watch).
- :func:`before_capture`, once the page is prepared (after the consent-manager rules):
  the consent heuristics and the filter lists' element hiding (``block_ads``,
  ``block_chats``).
- :func:`after_capture`, with the picture: blank detection, and one more capture after a
  wait when it is blank and the request says ``retry_if_blank``.

Each step is its own module; this one only says in which order they run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import structlog
from playwright.async_api import Page

from worker.engines.base import Capture
from worker.engines.blank import is_blank
from worker.engines.capture_run import CaptureRun
from worker.engines.consent_heuristics import dismiss_consent_overlays, watch_for_consent_banners
from worker.engines.element_hiding import hide_listed_elements
from worker.engines.filter_lists import FilterList

log = structlog.get_logger("shotline.engines.page_quality")

#: How long ``retry_if_blank`` waits before the second picture (at most half the time left).
BLANK_RETRY_WAIT_MS: Final = 3000


async def before_navigation(page: Page, run: CaptureRun) -> None:
    """What must be installed before the page loads."""
    if run.options.block_cookie_banners:
        await watch_for_consent_banners(page)


async def before_capture(page: Page, run: CaptureRun, lists: Sequence[FilterList]) -> None:
    """The last changes to the page before its picture is taken."""
    if run.options.block_cookie_banners:
        run.stage = "dismissing consent banners"
        await dismiss_consent_overlays(page)
    hiding = [listed for listed in lists if listed.category in ("ads", "chats")]
    if hiding:
        run.stage = "hiding listed elements"
        await hide_listed_elements(page, hiding)


async def after_capture(
    run: CaptureRun, capture: Capture, *, retake: Callable[[], Awaitable[bytes]]
) -> Capture:
    """Flag a blank picture; with ``retry_if_blank``, wait and take it once more."""
    fmt = run.options.format
    capture.blank = await asyncio.to_thread(is_blank, capture.data, fmt)
    if not capture.blank or not run.options.retry_if_blank:
        return capture
    wait_ms = min(BLANK_RETRY_WAIT_MS, run.remaining_ms() / 2)
    log.info("The picture is blank; waiting and capturing once more.", wait_ms=round(wait_ms))
    run.stage = "waiting to capture a blank page again"
    await asyncio.sleep(wait_ms / 1000)
    capture.data = await retake()
    capture.blank = await asyncio.to_thread(is_blank, capture.data, fmt)
    capture.notes.append(
        f"retry_if_blank: the first picture was blank; captured again after {round(wait_ms)} ms"
        + (" (still blank)" if capture.blank else "")
    )
    return capture

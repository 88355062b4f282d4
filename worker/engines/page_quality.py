"""The capture-quality steps of the ``chromium`` engine, called from
:mod:`worker.engines.chromium` at fixed points of a capture:

- :func:`before_navigation`, once the page exists: scripts that must be in place when the
  page's own run (the consent-banner watch).
- :func:`before_capture`, once the page is prepared (after the consent-manager rules):
  the consent heuristics and the filter lists' element hiding (``block_ads``,
  ``block_chats``).

Each step is its own module; this one only says in which order they run.
"""

from __future__ import annotations

from collections.abc import Sequence

from playwright.async_api import Page

from worker.engines.capture_run import CaptureRun
from worker.engines.consent_heuristics import dismiss_consent_overlays, watch_for_consent_banners
from worker.engines.element_hiding import hide_listed_elements
from worker.engines.filter_lists import FilterList


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

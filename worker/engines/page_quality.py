"""The capture-quality steps of the ``chromium`` engine, called from
:mod:`worker.engines.chromium` at fixed points of a capture:

- :func:`before_capture`, once the page is prepared: the filter lists' element hiding
  (``block_ads``, ``block_chats``).

Each step is its own module; this one only says in which order they run.
"""

from __future__ import annotations

from collections.abc import Sequence

from playwright.async_api import Page

from worker.engines.capture_run import CaptureRun
from worker.engines.element_hiding import hide_listed_elements
from worker.engines.filter_lists import FilterList


async def before_capture(page: Page, run: CaptureRun, lists: Sequence[FilterList]) -> None:
    """The last changes to the page before its picture is taken."""
    hiding = [listed for listed in lists if listed.category in ("ads", "chats")]
    if hiding:
        run.stage = "hiding listed elements"
        await hide_listed_elements(page, hiding)

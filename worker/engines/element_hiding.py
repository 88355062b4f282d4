"""Element hiding for ``block_ads`` and ``block_chats``: the filter lists' ``##`` rules.

Network rules keep most ads and widgets from loading; what a page serves itself (an ad
slot's empty frame, a chat launcher's container) is hidden by the lists' element-hiding
rules. Generic rules on class names and ids are many (EasyList has ~20,000), so only those
matching a class or id the page uses are added, as adblock-rust's cosmetic filtering does;
the rest (site-specific rules, complex generic selectors) come from the page's URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from worker.engines.browser import first_line
from worker.engines.filter_lists import FilterList
from worker.engines.scripts import page_script

log = structlog.get_logger("shotline.engines.element_hiding")

#: Most elements whose classes and ids are read.
MAX_ELEMENTS: Final = 20_000


def hiding_rules(selectors: Sequence[str]) -> str:
    """One ``display: none`` rule per line (as ``js/add_style.js`` takes them)."""
    return "\n".join(f"{selector} {{ display: none !important; }}" for selector in selectors)


def selectors_for(
    lists: Sequence[FilterList], page_url: str, classes: Sequence[str], ids: Sequence[str]
) -> list[str]:
    """Every selector the lists hide on ``page_url`` holding ``classes`` and ``ids``."""
    selectors: dict[str, None] = {}
    for listed in lists:
        hiding = listed.page_hiding(page_url)
        selectors.update(dict.fromkeys(sorted(hiding.selectors - hiding.exceptions)))
        if not hiding.generic_off:
            selectors.update(dict.fromkeys(
                listed.class_id_selectors(classes, ids, hiding.exceptions)
            ))
    return list(selectors)


async def add_style(page: Page, css: str) -> int:
    """Add ``css`` (one rule a line) to ``page`` whatever its CSP; returns the rules kept."""
    kept: int = await page.evaluate(page_script("add_style.js"), css)
    return kept


async def hide_listed_elements(page: Page, lists: Sequence[FilterList]) -> int:
    """Hide what ``lists``' element-hiding rules match on ``page``; returns the rules added."""
    if not lists:
        return 0
    try:
        names = await page.evaluate(page_script("page_names.js"), {"limit": MAX_ELEMENTS})
        selectors = selectors_for(lists, page.url, names["classes"], names["ids"])
        added = await add_style(page, hiding_rules(selectors)) if selectors else 0
    except PlaywrightError as exc:  # the page navigated meanwhile: nothing to hide in
        log.info("Could not hide listed elements.", error=first_line(exc.message))
        return 0
    log.debug("Listed elements hidden.", rules=added,
              lists=[listed.category for listed in lists])
    return added

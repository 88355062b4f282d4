"""``block_cookie_banners`` beyond the known consent managers: a heuristic pass that finds
home-grown consent banners and overlays by how they look and what they say.

Most small and mid-size sites write their own banner, which no consent-manager rule
(:mod:`worker.engines.cookie_banners`) knows. What they share: an element laid over the
page (fixed or sticky, a modal dialog; in the document, an open shadow root or a
same-origin frame) covering a meaningful share of the viewport, whose text speaks of
cookies or consent (English, German, French, Spanish, Italian, Portuguese, Dutch, Polish,
Swedish, Japanese) next to an accept/agree/allow/OK or close control. The pass clicks
that control (accept first), hides what is still there, then removes scroll locks and
backdrop dimming from ``html``/``body``. Elements holding most of the page's text are
never touched, nor overlays without consent wording (headers, footers, sidebars, other
modals). ``js/consent_heuristics.js`` is the whole logic; it is hand-written because no
maintained library does this outside a browser extension.

Banners injected after load are caught by the same script installed as an init script in
watch mode: a MutationObserver runs the pass again (debounced, at most 20 times) while
the page adds elements, until the capture.
"""

from __future__ import annotations

import json
from typing import Any, Final

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from worker.engines.browser import first_line
from worker.engines.scripts import page_script

log = structlog.get_logger("shotline.engines.consent_heuristics")

SCRIPT: Final = "consent_heuristics.js"
#: How long a click on "accept" may take to take the banner away before it is hidden.
SETTLE_MS: Final = 400


async def watch_for_consent_banners(page: Page) -> None:
    """Before navigation: handle banners as the page adds them (every frame, every load)."""
    await page.add_init_script(script=f"({page_script(SCRIPT)})({json.dumps({'watch': True})})")


async def dismiss_consent_overlays(page: Page) -> list[dict[str, Any]]:
    """Find, accept or close, and hide the consent banners on ``page`` now; returns what
    was handled (``kind``: accepted, closed, wall, frame; the banner's first words)."""
    try:
        report: dict[str, Any] = await page.evaluate(page_script(SCRIPT), {"settleMs": SETTLE_MS})
    except PlaywrightError as exc:  # e.g. an "accept" that reloads the page
        log.info("The consent heuristics could not finish.", error=first_line(exc.message))
        return []
    banners: list[dict[str, Any]] = report["banners"]
    if banners:
        log.info("Consent banners handled by the heuristics.", banners=len(banners),
                 kinds=[banner["kind"] for banner in banners], backdrops=report["backdrops"])
    return banners

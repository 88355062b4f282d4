"""Inline documents for the ``chromium`` engine: an ``html`` document, or ``markdown``
rendered to one (:mod:`worker.engines.markdown_page`), loaded into the capture's page.

A document is loaded into the same fresh, egress-gated page a URL would be: every resource
and navigation it starts goes through the capture's :class:`~worker.engines.egress.EgressGate`
and :class:`~worker.engines.navigation.NavigationGuard`. Without a ``base_url`` it is set
as the content of ``about:blank``; with one, the page navigates to ``base_url`` and the
navigation is answered from the document itself (Playwright's routing), so relative links
resolve against it and nothing is fetched from ``base_url`` but what the document loads.
"""

from __future__ import annotations

from playwright.async_api import Page, Request, Response, Route

from shared.jobs import CaptureOptions
from worker.engines.capture_run import CaptureRun
from worker.engines.markdown_page import render_markdown


def document_html(options: CaptureOptions) -> str | None:
    """The HTML the capture renders instead of loading a URL, or None for a ``url``."""
    if options.html is not None:
        return options.html
    if options.markdown is not None:
        return render_markdown(options.markdown)
    return None


async def load_document(page: Page, run: CaptureRun, document: str) -> Response | None:
    """Load ``document`` into ``page`` (see the module's docstring) and wait for
    ``wait_until``; the response of the ``base_url`` navigation, None without one."""
    options = run.options
    wait_until = options.wait_until.value
    if options.base_url is None:
        await page.set_content(document, wait_until=wait_until,  # type: ignore[arg-type]
                               timeout=run.remaining_ms())
        return None
    body = document.encode("utf-8")
    served = False

    async def serve_document(route: Route, request: Request) -> None:
        nonlocal served
        if not served and request.is_navigation_request() and request.frame == page.main_frame:
            served = True
            await route.fulfill(status=200, body=body, content_type="text/html; charset=utf-8")
        else:
            await route.fallback()

    await page.route("**/*", serve_document)
    return await page.goto(options.base_url, wait_until=wait_until,  # type: ignore[arg-type]
                           timeout=run.remaining_ms())

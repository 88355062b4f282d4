"""What a ``chromium`` capture reads from the rendered page besides its picture, when asked:
its metadata (``metadata: true``, read by ``data/metadata.js``) and, for content outputs,
the rendered DOM's HTML and the body's visible text (turned into files by
:mod:`worker.content`)."""

from __future__ import annotations

import functools
from importlib import resources

from playwright.async_api import Page, Response

from shared.page_outputs import bounded_metadata
from worker.engines.base import Capture
from worker.engines.capture_run import CaptureRun

#: The body's visible text as the browser lays it out (hidden elements left out).
VISIBLE_TEXT_JS = "() => (document.body ? document.body.innerText : '')"


@functools.cache
def metadata_script() -> str:
    """The page script that reads the metadata."""
    return resources.files("worker.engines").joinpath("data/metadata.js").read_text("utf-8")


async def read_page_outputs(
    page: Page, run: CaptureRun, response: Response | None, capture: Capture
) -> None:
    """Fill ``capture``'s metadata and page content, as far as ``run``'s options ask."""
    options = run.options
    if options.metadata:
        run.stage = "reading the page's metadata"
        raw = await page.evaluate(metadata_script())
        headers = await response.all_headers() if response is not None else {}
        capture.metadata = bounded_metadata(
            raw if isinstance(raw, dict) else {}, final_url=page.url,
            http_status=response.status if response is not None else None, headers=headers,
        )
    if options.content or options.format.content_kind is not None:
        run.stage = "reading the page's content"
        capture.page_html = await page.content()
        text = await page.evaluate(VISIBLE_TEXT_JS)
        capture.page_text = text if isinstance(text, str) else ""

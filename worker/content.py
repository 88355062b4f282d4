"""Page content outputs (``content: ["html", "text", "markdown"]``, or ``format`` one of
them): the files made from what the engine read of the rendered page, and their storage
next to the picture.

- ``html``: the rendered DOM, serialised by the browser (scripts' changes included).
- ``text`` and ``markdown``: the page's main content, found and converted by trafilatura
  (maintained, the best-scoring open-source main-content extractor in published
  comparisons, with Markdown output of its own): navigation, headers, footers and
  boilerplate are left out. A page with no article-like content at all (a social card, a
  dashboard) gets, rather than nothing, the body's visible text as the browser lays it out,
  and the body converted by markdownify.

Extraction is CPU work on possibly large documents, so it runs in a thread: the worker's
event loop keeps serving the browser meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses

import markdownify
import trafilatura

from shared.constants import RESULTS_PREFIX
from shared.jobs import CaptureOptions
from shared.page_outputs import ContentKind, StoredContent
from shared.storage.destinations import Placement
from worker.engines.base import Capture


def requested_kinds(options: CaptureOptions) -> list[ContentKind]:
    """The content outputs ``options`` ask for: ``content``, plus ``format``'s own kind."""
    kinds = list(options.content)
    own = options.format.content_kind
    if own is not None and own not in kinds:
        kinds.append(own)
    return kinds


def main_text(html: str, *, url: str | None) -> str | None:
    """The main content of ``html`` as plain text (paragraphs on lines of their own)."""
    return trafilatura.extract(html, url=url, output_format="txt", include_comments=False,
                               include_tables=True, favor_precision=True)


def main_markdown(html: str, *, url: str | None) -> str | None:
    """The main content of ``html`` as Markdown (headings, lists, links, tables kept)."""
    return trafilatura.extract(html, url=url, output_format="markdown", include_comments=False,
                               include_tables=True, include_links=True,
                               include_formatting=True, favor_precision=True)


def render_content(capture: Capture, kinds: list[ContentKind], *,
                   url: str | None) -> dict[ContentKind, bytes]:
    """Each of ``kinds`` as UTF-8 bytes, from the page the engine read into ``capture``."""
    html = capture.page_html or ""
    outputs: dict[ContentKind, bytes] = {}
    for kind in kinds:
        if kind is ContentKind.html:
            text = html
        elif kind is ContentKind.text:
            text = main_text(html, url=url) or (capture.page_text or "").strip()
        else:
            text = main_markdown(html, url=url) or markdownify.markdownify(
                html, heading_style="ATX", strip=["script", "style", "noscript"]).strip()
        outputs[kind] = (text if text.endswith("\n") or not text else text + "\n").encode("utf-8")
    return outputs


def content_key(job_id: str, kind: ContentKind) -> str:
    """Storage key of one content output of ``job_id`` (next to its picture)."""
    return f"{RESULTS_PREFIX}{job_id}.content.{kind.extension}"


async def page_content(capture: Capture, options: CaptureOptions
                       ) -> tuple[Capture, dict[ContentKind, bytes]]:
    """The content outputs ``options`` ask for, and ``capture`` with its data being the
    output ``format`` names when that is a content kind (there is no picture then)."""
    kinds = requested_kinds(options)
    if not kinds:
        return capture, {}
    outputs = await asyncio.to_thread(render_content, capture, kinds, url=capture.final_url)
    own = options.format.content_kind
    if own is not None:
        capture = dataclasses.replace(capture, data=outputs[own])
    return capture, outputs


async def store_content(placement: Placement, job_id: str, outputs: dict[ContentKind, bytes],
                        options: CaptureOptions) -> dict[ContentKind, StoredContent]:
    """Store the outputs ``options.content`` lists where the job's picture goes (the
    format's own output is the result itself) and describe them for the job's record."""
    stored: dict[ContentKind, StoredContent] = {}
    for kind in options.content:
        key = placement.prefix + content_key(job_id, kind)
        await placement.put(key, outputs[kind], content_type=kind.content_type)
        stored[kind] = StoredContent(key=key, content_type=kind.content_type,
                                     bytes=len(outputs[kind]))
    return stored

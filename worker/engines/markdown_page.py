"""``markdown`` input as an HTML page, for both engines.

markdown-it-py (CommonMark plus tables and strikethrough; raw HTML in the Markdown is
escaped, not rendered; ``javascript:`` links dropped) into a page with a built-in style
sheet (``data/markdown.css``) that follows ``prefers-color-scheme``, so ``dark_mode`` gives
the dark variant. Light to import (no browser): the SnapAPI engine sends the same page as
its ``html`` so both engines draw Markdown alike.
"""

from __future__ import annotations

import functools
import html as html_escaping
from importlib import resources
from typing import Final

from markdown_it import MarkdownIt

#: The page markdown is rendered into; ``{style}``, ``{title}`` and ``{body}`` filled in.
MARKDOWN_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body><main class="markdown-body">
{body}</main></body></html>
"""


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


@functools.cache
def markdown_stylesheet() -> str:
    """The built-in style sheet of rendered Markdown."""
    return resources.files("worker.engines").joinpath("data/markdown.css").read_text("utf-8")


def render_markdown(text: str) -> str:
    """``text`` (CommonMark) as a complete HTML page in the built-in style sheet; its first
    heading (if any) is the page's title."""
    md = _markdown()
    tokens = md.parse(text)
    title = next((tokens[i + 1].content for i, token in enumerate(tokens[:-1])
                  if token.type == "heading_open"), "")
    body = md.renderer.render(tokens, md.options, {})
    return MARKDOWN_PAGE.format(style=markdown_stylesheet(), title=html_escaping.escape(title),
                                body=body)

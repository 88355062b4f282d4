"""HTML and Markdown inputs, page metadata and content outputs, on the ``chromium`` engine
against real Chromium and the local test pages (one browser for the module)."""

from __future__ import annotations

import asyncio
import email.utils
import io
import os
import re
from collections import Counter
from collections.abc import Iterator

import pytest
from PIL import Image

from shared.jobs import CaptureOptions
from shared.page_outputs import ContentKind
from tests.engine_loop import EngineOnLoop
from tests.servers import LOOPBACK_POLICY, PAGES_DIR, PageServer
from worker.content import page_content, render_content
from worker.engines.chromium import ChromiumEngine

#: A social card: a 1200x630 canvas of known colours (no text, so no font can move a pixel).
SOCIAL_CARD = """<!doctype html>
<html><head><style>
  html, body { margin: 0; width: 1200px; height: 630px; background: #1e3a8a; }
  #badge { position: absolute; left: 60px; top: 60px; width: 200px; height: 120px; background: #f59e0b; }
  #bar { position: absolute; left: 0; bottom: 0; width: 1200px; height: 30px; background: #ffffff; }
  h1 { position: absolute; left: 300px; top: 60px; margin: 0; font: bold 72px sans-serif; color: #fff; }
</style></head>
<body><div id="badge"></div><h1>Launch week</h1><div id="bar"></div></body></html>
"""

MARKDOWN = """# Quarterly report

Revenue grew in every region.

| region | q1 | q2 |
|--------|----|----|
| north  | 10 | 12 |
| south  | 7  | 9  |

```python
def total(rows):
    return sum(row.q2 for row in rows)
```

<script>document.title = "raw html ran"</script>
"""

#: Colours of data/markdown.css: (page background, code block, table header), light and dark.
LIGHT = ((255, 255, 255), (0xF6, 0xF8, 0xFA), (0xEF, 0xF2, 0xF5))
DARK = ((0x0D, 0x11, 0x17), (0x15, 0x1B, 0x23), (0x21, 0x28, 0x30))


@pytest.fixture(scope="module")
def browser() -> Iterator[EngineOnLoop]:
    engine = ChromiumEngine(policy=LOOPBACK_POLICY, max_result_bytes=50_000_000)
    with asyncio.Runner() as runner:
        runner.run(engine.start())
        try:
            yield EngineOnLoop(engine, runner)
        finally:
            runner.run(engine.aclose())


def _rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def test_an_html_social_card_renders_to_a_1200x630_png(browser: EngineOnLoop) -> None:
    capture = browser.render(html=SOCIAL_CARD, width=1200, height=630)
    image = _rgb(capture.data)
    assert image.size == (1200, 630)
    assert image.getpixel((5, 5)) == (0x1E, 0x3A, 0x8A)       # background
    assert image.getpixel((160, 120)) == (0xF5, 0x9E, 0x0B)   # badge
    assert image.getpixel((59, 120)) == (0x1E, 0x3A, 0x8A)    # just left of it
    assert image.getpixel((600, 620)) == (255, 255, 255)      # bottom bar
    assert image.getpixel((600, 599)) == (0x1E, 0x3A, 0x8A)   # just above it
    # The heading drew white text in its box, and nowhere else.
    heading = image.crop((300, 60, 900, 150))
    assert Counter(heading.get_flattened_data())[(255, 255, 255)] > 500
    assert capture.final_url == "about:blank" and capture.http_status is None


def test_the_same_html_prints_to_a_pdf(browser: EngineOnLoop) -> None:
    capture = browser.render(html=SOCIAL_CARD, format="pdf",
                             pdf_options={"page_size": "a4", "landscape": True})
    assert capture.content_type == "application/pdf"
    assert capture.data.startswith(b"%PDF-")
    # One page, A4 landscape (842 x 595 pt).
    assert len(re.findall(rb"/Type\s*/Page(?!s)", capture.data)) == 1
    (box,) = {tuple(round(float(n)) for n in m.split()) for m in
              re.findall(rb"/MediaBox\s*\[([^\]]+)\]", capture.data)}
    assert box[:2] == (0, 0) and abs(box[2] - 842) <= 1 and abs(box[3] - 595) <= 1
    assert len(capture.data) > 1000


def test_base_url_resolves_relative_links_through_the_egress_gate(
    browser: EngineOnLoop, page_server: PageServer
) -> None:
    html = ('<html><body style="margin:0"><img src="../color.png?rgb=00ff00&w=300&h=200"'
            ' style="display:block"></body></html>')
    capture = browser.render(html=html, base_url=page_server.url("/docs/"), width=400, height=300)
    image = _rgb(capture.data)
    assert image.getpixel((150, 100)) == (0, 255, 0)   # the image came from base_url's host
    assert image.getpixel((350, 250)) == (255, 255, 255)
    assert capture.final_url == page_server.url("/docs/")
    assert "/color.png?rgb=00ff00&w=300&h=200" in page_server.requests
    assert "/docs/" not in page_server.requests       # the document itself was never fetched


@pytest.mark.parametrize(("dark_mode", "palette"), [(False, LIGHT), (True, DARK)])
def test_markdown_renders_a_table_and_a_code_block_light_and_dark(
    browser: EngineOnLoop, dark_mode: bool, palette: tuple[tuple[int, int, int], ...]
) -> None:
    capture = browser.render(markdown=MARKDOWN, width=900, height=700, dark_mode=dark_mode)
    image = _rgb(capture.data)
    colours = Counter(image.get_flattened_data())
    background, code, table_head = palette
    assert image.getpixel((5, 5)) == background
    assert colours[background] > 300_000               # most of the page
    assert colours[code] > 15_000                      # the code block's area
    assert colours[table_head] > 1_500                 # the table's header row
    other = DARK if palette is LIGHT else LIGHT
    assert all(colours[colour] == 0 for colour in other)   # no colour of the other scheme
    assert capture.title == "Quarterly report"         # the raw <script> never ran


def test_markdown_escapes_raw_html() -> None:
    from worker.engines.markdown_page import render_markdown

    page = render_markdown("hello <img src=x onerror=alert(1)> [x](javascript:alert(1))")
    assert "<img" not in page and "&lt;img" in page
    assert "javascript:" not in page.split("</style>", 1)[1].replace("[x](javascript:", "")


def test_metadata_of_a_page_with_open_graph_tags(
    browser: EngineOnLoop, page_server: PageServer
) -> None:
    capture = browser.capture(page_server.url("/og.html"), metadata=True, width=1000, height=600)
    assert capture.metadata is not None
    modified = email.utils.formatdate(os.stat(PAGES_DIR / "og.html").st_mtime, usegmt=True)
    assert capture.metadata.model_dump() == {
        "title": "Launch week: the card",
        "description": "Everything we shipped this week, in one card.",
        "canonical_url": page_server.url("/launch/card"),
        "lang": "en-GB",
        "open_graph": {"title": "Launch week", "type": "article",
                       "image": "https://cdn.example.com/card.png", "image:width": "1200"},
        "twitter": {"card": "summary_large_image", "site": "@shotline"},
        "icons": [
            {"url": page_server.url("/favicon.ico"), "rel": "icon", "sizes": "32x32", "type": None},
            {"url": page_server.url("/icons/touch.png"), "rel": "apple-touch-icon", "sizes": None,
             "type": "image/png"},
        ],
        "final_url": page_server.url("/og.html"),
        "http_status": 200,
        "headers": {"content-type": "text/html", "last-modified": modified},
        "scroll_width": 1000,
        "scroll_height": 2000,
    }


def test_metadata_is_bounded(browser: EngineOnLoop) -> None:
    tags = "".join(f'<meta property="og:t{i}" content="{"x" * 5000}">' for i in range(200))
    html = f"<html><head><title>{'y' * 9000}</title>{tags}</head><body></body></html>"
    capture = browser.render(html=html, metadata=True)
    assert capture.metadata is not None
    assert len(capture.metadata.title or "") == 2048
    assert len(capture.metadata.open_graph) == 64
    assert all(len(value) == 2048 for value in capture.metadata.open_graph.values())
    assert capture.metadata.model_dump_json().__len__() < 200_000


def test_content_of_an_article_leaves_the_navigation_chrome_out(
    browser: EngineOnLoop, page_server: PageServer
) -> None:
    capture = browser.capture(page_server.url("/article.html"),
                              content=["html", "text", "markdown"])
    assert capture.page_html is not None and "Sidebar chrome item one" in capture.page_html
    outputs = render_content(capture, list(ContentKind), url=capture.final_url)
    paragraphs = ["so that sailors can tell one tower from another in daylight",
                  "a sequence of flashes and eclipses that is unique",
                  "hanging from ropes on the seaward side"]
    text = outputs[ContentKind.text].decode()
    markdown = outputs[ContentKind.markdown].decode()
    for output in (text, markdown):
        for paragraph in paragraphs:
            assert paragraph in output
        assert "chrome" not in output.lower(), output
    # Paragraphs stay apart, and the Markdown has the article's heading as a heading.
    assert text.index(paragraphs[0]) < text.index(paragraphs[1]) < text.index(paragraphs[2])
    assert "# Why lighthouses are painted in stripes" in markdown
    assert "Sidebar chrome item one" in outputs[ContentKind.html].decode()


def test_a_format_of_content_has_no_picture(browser: EngineOnLoop, page_server: PageServer) -> None:
    capture = browser.capture(page_server.url("/article.html"), format="markdown")
    assert capture.data == b""
    options = CaptureOptions(url=page_server.url("/article.html"), format="markdown")
    result, outputs = browser.runner.run(page_content(capture, options))
    assert result.data == outputs[ContentKind.markdown]
    assert result.data.startswith(b"# Why lighthouses are painted in stripes")
    assert result.content_type == "text/markdown; charset=utf-8"


def test_a_page_without_an_article_falls_back_to_its_visible_text(browser: EngineOnLoop) -> None:
    capture = browser.render(html=SOCIAL_CARD, content=["text", "markdown"])
    outputs = render_content(capture, [ContentKind.text, ContentKind.markdown], url=None)
    assert outputs[ContentKind.text] == b"Launch week\n"
    assert outputs[ContentKind.markdown] == b"# Launch week\n"

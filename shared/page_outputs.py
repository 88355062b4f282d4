"""What a capture can return besides its picture: the page's metadata (``metadata: true``)
and its content as files (``content: ["html", "text", "markdown"]``, or ``format`` one of
them alone, with no picture).

The models here are stored on the job and shown alike; :mod:`worker.engines.metadata` and
:mod:`worker.content` produce them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, Field

#: Longest string kept in page metadata (a title, a tag's content, a URL).
MAX_METADATA_STRING: Final = 2048
#: Most Open Graph or Twitter tags kept.
MAX_METADATA_TAGS: Final = 64
#: Most icons kept.
MAX_METADATA_ICONS: Final = 16
#: Response headers of the main document that metadata shows: nothing that identifies the
#: server's visitors or sets state.
SAFE_HEADERS: Final = ("content-type", "content-language", "last-modified", "cache-control",
                       "etag", "expires", "age")


class ContentKind(StrEnum):
    """A page content output: the rendered DOM, its text, its main content as Markdown."""

    html = "html"
    text = "text"
    markdown = "markdown"

    @property
    def content_type(self) -> str:
        """MIME type of files of this kind (always UTF-8)."""
        return {"html": "text/html", "text": "text/plain",
                "markdown": "text/markdown"}[self.value] + "; charset=utf-8"

    @property
    def extension(self) -> str:
        """File name extension (without the dot)."""
        return {"html": "html", "text": "txt", "markdown": "md"}[self.value]


class Icon(BaseModel):
    """One ``<link rel=icon ...>`` of the page, its URL made absolute."""

    url: str
    rel: str
    sizes: str | None = None
    type: str | None = None


class PageMetadata(BaseModel):
    """What the rendered page says about itself (``metadata: true``), bounded in size."""

    title: str | None = Field(default=None, examples=["Example Domain"])
    description: str | None = None
    canonical_url: str | None = None
    lang: str | None = Field(default=None, examples=["en"])
    open_graph: dict[str, str] = Field(
        default_factory=dict, description="og:* properties without the prefix (og:image → image).",
        examples=[{"title": "Example", "image": "https://example.com/card.png"}],
    )
    twitter: dict[str, str] = Field(
        default_factory=dict, description="twitter:* names without the prefix.",
        examples=[{"card": "summary_large_image"}],
    )
    icons: list[Icon] = Field(default_factory=list)
    final_url: str | None = Field(default=None, description="Page URL after redirects.")
    http_status: int | None = Field(default=None, description="Status of the main document.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description=f"A safe subset of the main document's response headers: {', '.join(SAFE_HEADERS)}.",
    )
    scroll_width: int | None = Field(default=None, description="Full scrollable width, CSS px.")
    scroll_height: int | None = Field(default=None, description="Full scrollable height, CSS px.")


class StoredContent(BaseModel):
    """A content output as recorded on the job (the download URL is minted per read)."""

    key: str
    content_type: str
    bytes: int


class ContentView(BaseModel):
    """A content output with a freshly minted, time-limited download URL."""

    url: str
    expires_at: datetime
    content_type: str = Field(examples=["text/markdown; charset=utf-8"])
    bytes: int


def _clip(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_METADATA_STRING]


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    tags: dict[str, str] = {}
    for name, content in value.items():
        clipped = _clip(content)
        if isinstance(name, str) and clipped is not None and len(tags) < MAX_METADATA_TAGS:
            tags[name[:128]] = clipped
    return tags


def bounded_metadata(raw: dict[str, Any], *, final_url: str | None, http_status: int | None,
                     headers: dict[str, str]) -> PageMetadata:
    """:class:`PageMetadata` from what the page's script read (``raw``: untrusted, any
    shape), every string and list cut to its bound, plus what the browser knows."""
    icons: list[Icon] = []
    for icon in raw.get("icons") or []:
        if isinstance(icon, dict) and _clip(icon.get("url")) and len(icons) < MAX_METADATA_ICONS:
            icons.append(Icon(url=_clip(icon.get("url")) or "", rel=_clip(icon.get("rel")) or "icon",
                              sizes=_clip(icon.get("sizes")), type=_clip(icon.get("type"))))

    def size(name: str) -> int | None:
        value = raw.get(name)
        return int(value) if isinstance(value, int | float) and value >= 0 else None

    return PageMetadata(
        title=_clip(raw.get("title")),
        description=_clip(raw.get("description")),
        canonical_url=_clip(raw.get("canonical_url")),
        lang=_clip(raw.get("lang")),
        open_graph=_tags(raw.get("open_graph")),
        twitter=_tags(raw.get("twitter")),
        icons=icons,
        final_url=final_url,
        http_status=http_status,
        headers={name: value[:MAX_METADATA_STRING] for name, value in headers.items()
                 if name.lower() in SAFE_HEADERS},
        scroll_width=size("scroll_width"),
        scroll_height=size("scroll_height"),
    )

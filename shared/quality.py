"""Capture-quality options and results: what a request may add to get a clean, complete
picture of a real page (chat widgets gone, waits that finish, content checks, a second
try when the picture comes out blank), and what the result says about it.

:class:`QualityOptions` is a base of :class:`shared.jobs.CaptureOptions` and
:class:`QualityResult` of :class:`shared.jobs.ResultMetadata`: the fields live here, beside
their limits, so the job model only names the mix-ins.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, Field

from shared.options import Selector

#: Most ``remove_selectors`` and content checks.
MAX_REMOVE_SELECTORS: Final = 50
MAX_CONTENT_CHECKS: Final = 20
#: Longest ``wait_for_function`` expression and content-check text (characters).
MAX_FUNCTION_CHARS: Final = 10_000
MAX_CONTENT_CHECK_CHARS: Final = 1_000

ContentText = Annotated[str, Field(min_length=1, max_length=MAX_CONTENT_CHECK_CHARS)]


class QualityOptions(BaseModel):
    """Page cleanup, waits and checks beyond the basic capture options."""

    block_chats: bool = Field(
        default=False,
        description="Refuse chat widgets (Intercom, Drift, Zendesk, Crisp, HubSpot, tawk.to,"
        " LiveChat, Tidio, Olark...) and hide their launchers.",
    )
    remove_selectors: list[Selector] = Field(
        default_factory=list, max_length=MAX_REMOVE_SELECTORS,
        description="Elements removed from the page (unlike hide_selectors, they leave no"
        " space behind).",
    )
    scroll_to: Selector | None = Field(
        default=None, description="Scroll this element into view before the capture."
    )
    hover: Selector | None = Field(
        default=None, description="Move the mouse over this element before the capture."
    )
    wait_for_function: str | None = Field(
        default=None, min_length=1, max_length=MAX_FUNCTION_CHARS,
        description="A JavaScript expression polled until it is truthy (bounded by timeout_ms).",
        examples=["window.appReady === true"],
    )
    fail_if_content_contains: list[ContentText] = Field(
        default_factory=list, max_length=MAX_CONTENT_CHECKS,
        description="Fail the job (content_check_failed) when the page's text contains any"
        " of these (case-insensitive).",
        examples=[["Access denied"]],
    )
    fail_if_content_missing: list[ContentText] = Field(
        default_factory=list, max_length=MAX_CONTENT_CHECKS,
        description="Fail the job (content_check_failed) unless the page's text contains"
        " each of these (case-insensitive).",
    )
    retry_if_blank: bool = Field(
        default=False,
        description="When the picture comes out blank (one colour), wait and capture once more.",
    )
    full_width: bool = Field(
        default=False,
        description="With full_page, keep content wider than the viewport (default: the"
        " picture is as wide as the viewport).",
    )


class QualityResult(BaseModel):
    """What a result says about the picture's quality."""

    blank: bool | None = Field(
        default=None,
        description="True when the picture is essentially one colour (null for PDFs).",
    )
    truncated: dict[str, int] | None = Field(
        default=None,
        description="When a size cap cut the picture: the page's real size"
        " {page_width, page_height} in CSS pixels and the picture's {width, height}.",
    )
    popups_blocked: int = Field(default=0, description="Windows the page tried to open, closed.")
    notes: list[str] = Field(
        default_factory=list,
        description="What the capture did differently from what was asked, e.g. a"
        " networkidle wait that hit its cap.",
    )


def valid_text(value: str | None) -> str | None:
    """``value`` as valid Unicode: what a page hands back (its title, URLs, text) may hold
    lone surrogates (``document.title = "\\ud800"``), which no JSON encoder or Redis
    client would store; they become U+FFFD, proper surrogate pairs are joined."""
    if value is None:
        return None
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

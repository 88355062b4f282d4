"""What a capture renders: the page at ``url``, or a document given inline, ``html``
(with an optional ``base_url`` its relative links resolve against) or ``markdown``.

Both sides import this: the API checks a request's input (exactly one, within its
limits, valid UTF-8) and shows a job's document as a digest and a size, never the document
itself; the workers render it (:mod:`worker.engines.document`).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.errors import BaseUrlBlocked, DocumentTooLarge, UrlBlocked

if TYPE_CHECKING:
    from shared.jobs import CaptureOptions
    from shared.settings import Settings
    from shared.url_policy import UrlPolicy

#: Largest ``markdown`` accepted, in UTF-8 bytes (SnapAPI's limit too).
MAX_MARKDOWN_BYTES: Final = 1_000_000
#: Largest ``html`` accepted unless ``SHOTLINE_MAX_HTML_BYTES`` says otherwise (SnapAPI's).
DEFAULT_MAX_HTML_BYTES: Final = 5_000_000
#: The most ``SHOTLINE_MAX_HTML_BYTES`` may allow: documents travel in the job's record.
MAX_HTML_BYTES_CEILING: Final = 20_000_000
#: The three inputs, in the order error messages name them.
INPUT_FIELDS: Final = ("url", "html", "markdown")


class InputKind(StrEnum):
    """Where a capture's page comes from."""

    url = "url"
    html = "html"
    markdown = "markdown"


class DocumentSummary(BaseModel):
    """An inline document as job views show it: what it was, its digest and size."""

    kind: InputKind = Field(examples=["html"])
    sha256: str = Field(description="SHA-256 (hex) of the document's UTF-8 bytes.")
    bytes: int = Field(description="Size of the document in UTF-8 bytes.")
    base_url: str | None = Field(default=None, description="Base of its relative links.")


def utf8_bytes(value: str, field: str) -> bytes:
    """``value`` encoded as UTF-8; ValueError naming ``field`` when it cannot be (a JSON
    string may carry unpaired surrogates, ``"\\ud800"``, which no UTF-8 text contains)."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{field} is not valid UTF-8 text (unpaired surrogate at character {exc.start})"
        ) from None


def check_inputs(
    *, url: str | None, html: str | None, markdown: str | None, base_url: str | None,
    required: bool,
) -> None:
    """Refuse more than one input (or none, when ``required``) and a stray ``base_url``.

    Raises:
        ValidationError: one error per field concerned (``url`` when none is given), so the
            API's 422 details name them; pydantic carries it out of a model validator with
            the fields' locations.
    """
    given = [name for name, value in zip(INPUT_FIELDS, (url, html, markdown), strict=True)
             if value is not None]
    if len(given) > 1 or (required and not given):
        found = f"got {' and '.join(given)}" if given else "got none of them"
        message = f"give exactly one of url, html or markdown ({found})"
        raise ValidationError.from_exception_data("inputs", [
            InitErrorDetails(type=PydanticCustomError("input_choice", message), loc=(field,),
                             input=None)
            for field in (given if len(given) > 1 else ["url"])
        ])
    if base_url is not None and html is None and markdown is None:
        raise ValidationError.from_exception_data("inputs", [InitErrorDetails(
            type=PydanticCustomError(
                "input_choice", "base_url applies to html and markdown only (a url is its own base)"),
            loc=("base_url",), input=base_url)])


def input_kind(options: CaptureOptions) -> InputKind:
    """Which input ``options`` render."""
    if options.html is not None:
        return InputKind.html
    if options.markdown is not None:
        return InputKind.markdown
    return InputKind.url


def summarize(options: CaptureOptions) -> DocumentSummary | None:
    """The digest and size of ``options``' inline document; None for a ``url``."""
    kind = input_kind(options)
    text = options.html if kind is InputKind.html else options.markdown
    if text is None:
        return None
    data = text.encode("utf-8")
    return DocumentSummary(kind=kind, sha256=hashlib.sha256(data).hexdigest(),
                           bytes=len(data), base_url=options.base_url)


def page_url(options: CaptureOptions) -> str | None:
    """The page's address: ``url``, else the document's ``base_url`` (None: no address,
    the document is shown as ``about:blank``)."""
    return options.url if options.url is not None else options.base_url


def check_document_size(options: CaptureOptions, *, max_html_bytes: int) -> None:
    """Refuse an ``html`` larger than the server's ``max_html_bytes``.

    Raises:
        DocumentTooLarge: naming the field and the limit.
    """
    if options.html is None:
        return
    size = len(options.html.encode("utf-8"))
    if size > max_html_bytes:
        raise DocumentTooLarge(
            f"html is {size} bytes, above this server's limit of {max_html_bytes} bytes "
            "(SHOTLINE_MAX_HTML_BYTES); capture it from a URL instead",
            field="html",
        )


#: Room a request's other fields get beside an ``html`` of the largest size.
REQUEST_MARGIN_BYTES: Final = 64 * 1024


def request_body_limit(settings: Settings) -> int:
    """The largest request body the API reads: ``MAX_REQUEST_BYTES`` when set, else enough
    for an ``html`` of ``MAX_HTML_BYTES`` plus the request's other fields."""
    if settings.max_request_bytes is not None:
        return settings.max_request_bytes
    return settings.max_html_bytes + REQUEST_MARGIN_BYTES


async def check_input(policy: UrlPolicy, options: CaptureOptions, *, max_html_bytes: int) -> None:
    """What the API checks of a request's input before queueing it: the ``url`` (or the
    ``base_url`` of a document) passes the URL policy, an ``html`` is within the limit.

    Raises:
        UrlBlocked: ``url`` refused (:class:`BaseUrlBlocked` for ``base_url``).
        DocumentTooLarge: ``html`` above ``max_html_bytes``.
    """
    check_document_size(options, max_html_bytes=max_html_bytes)
    if options.url is not None:
        await policy.acheck_url(options.url)
    elif options.base_url is not None:
        try:
            await policy.acheck_url(options.base_url)
        except UrlBlocked as exc:
            raise BaseUrlBlocked(f"base_url: {exc.message}") from exc

"""The structured parts of :class:`shared.jobs.CaptureOptions`: cookies, HTTP auth, PDF
options, the clip rectangle, resource types, and the checks on headers, locale and
timezone. Limits follow SnapAPI's where it has them, so both engines accept the same input.
"""

from __future__ import annotations

import re
import zoneinfo
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: Longest ``css`` and ``js`` accepted (characters), as SnapAPI.
MAX_INJECTED_CHARS: Final = 100_000
#: Most ``hide_selectors``, as SnapAPI.
MAX_HIDE_SELECTORS: Final = 50
#: Most ``headers`` and ``cookies``.
MAX_HEADERS: Final = 50
MAX_COOKIES: Final = 50
#: Shown instead of secrets (passwords, cookie values) in job views.
REDACTED: Final = "***"

#: Headers a capture may not set: the browser owns them (framing, connection, proxy).
FORBIDDEN_HEADERS: Final = frozenset({
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
    "trailer", "upgrade", "proxy-authorization", "proxy-connection", "expect",
})

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")
_CSS_LENGTH = r"^\d{1,4}(\.\d{1,3})?(px|in|cm|mm)$"
_PAGE_RANGES = r"^\s*\d{1,5}(\s*-\s*\d{1,5})?(\s*,\s*\d{1,5}(\s*-\s*\d{1,5})?){0,49}\s*$"


class ResourceType(StrEnum):
    """Kinds of sub-requests ``block_resources`` can refuse (the page itself always loads)."""

    stylesheet = "stylesheet"
    image = "image"
    media = "media"
    font = "font"
    script = "script"
    xhr = "xhr"
    fetch = "fetch"
    websocket = "websocket"
    eventsource = "eventsource"
    manifest = "manifest"
    texttrack = "texttrack"
    other = "other"


class PdfPageSize(StrEnum):
    """Paper sizes for PDFs."""

    a3 = "a3"
    a4 = "a4"
    a5 = "a5"
    letter = "letter"
    legal = "legal"
    tabloid = "tabloid"


def _header_name(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{value!r} is not a valid header name")
    if value.lower() in FORBIDDEN_HEADERS:
        raise ValueError(f"the header {value!r} cannot be set")
    return value


def _header_value(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("header values cannot contain line breaks or NUL")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[str, Field(max_length=8192), AfterValidator(_header_value)]


def check_locale(value: str) -> str:
    """A BCP 47 language tag such as ``en-US`` or ``zh-Hant-TW``."""
    if not _LOCALE.match(value):
        raise ValueError(f"{value!r} is not a locale such as en-US")
    return value


def check_timezone(value: str) -> str:
    """An IANA time zone name such as ``Europe/Berlin``."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from exc
    return value


Locale = Annotated[str, Field(max_length=35, examples=["en-US"]), AfterValidator(check_locale)]
Timezone = Annotated[
    str, Field(max_length=64, examples=["Europe/Berlin"]), AfterValidator(check_timezone)
]
Selector = Annotated[str, Field(min_length=1, max_length=1000)]
CssLength = Annotated[str, Field(pattern=_CSS_LENGTH, examples=["10mm"])]


class Cookie(BaseModel):
    """A cookie set before the page loads; without ``domain`` it belongs to the page's URL."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=4096)
    value: str = Field(max_length=4096)
    domain: str | None = Field(default=None, min_length=1, max_length=253)
    path: str = Field(default="/", min_length=1, max_length=1024, pattern=r"^/")
    secure: bool = False
    http_only: bool = False
    same_site: Literal["Strict", "Lax", "None"] | None = None

    @model_validator(mode="after")
    def _storable(self) -> Cookie:
        return _check_cookie(self)


#: Longest name plus value of a cookie browsers keep (RFC 6265bis: 4096 bytes).
MAX_COOKIE_BYTES: Final = 4096
_COOKIE_NAME_FORBIDDEN: Final = frozenset(";= \t")
_COOKIE_VALUE_FORBIDDEN: Final = frozenset(";")


def _check_cookie(cookie: Cookie) -> Cookie:
    """Refuse what Chromium cannot store (it refuses such cookies, failing the capture
    after the job was accepted): ``;``, ``=``, spaces and control characters in the name,
    ``;`` and control characters in the value, an oversized pair, a domain of dots."""
    name, value = cookie.name, cookie.value
    if any(ch in _COOKIE_NAME_FORBIDDEN or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in name):
        raise ValueError(f"cookie {name[:40]!r}: a cookie name cannot hold ';', '=', spaces"
                         " or control characters")
    if any(ch in _COOKIE_VALUE_FORBIDDEN or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"cookie {name[:40]!r}: its value cannot hold ';' or control"
                         " characters (CR, LF...); percent-encode them")
    if len(name.encode()) + len(value.encode()) > MAX_COOKIE_BYTES:
        raise ValueError(f"cookie {name[:40]!r}: name and value together exceed"
                         f" {MAX_COOKIE_BYTES} bytes")
    if cookie.domain is not None and not cookie.domain.strip(".").strip():
        raise ValueError(f"cookie {name[:40]!r}: {cookie.domain!r} is not a domain")
    return cookie


class HttpAuth(BaseModel):
    """HTTP basic auth credentials, answered only to the captured page's own origin."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=256)
    password: str = Field(max_length=256)


class PdfOptions(BaseModel):
    """How a PDF is printed."""

    model_config = ConfigDict(extra="forbid")

    page_size: PdfPageSize | None = Field(default=None, description="Paper; Letter when unset.")
    landscape: bool = False
    print_background: bool = True
    scale: float = Field(default=1, ge=0.1, le=2)
    margin_top: CssLength | None = None
    margin_bottom: CssLength | None = None
    margin_left: CssLength | None = None
    margin_right: CssLength | None = None
    page_ranges: str | None = Field(default=None, pattern=_PAGE_RANGES, examples=["1-3, 5"])


class Clip(BaseModel):
    """A rectangle of the page in CSS pixels (document coordinates with ``full_page``)."""

    model_config = ConfigDict(extra="forbid")

    x: int = Field(ge=0, le=20000)
    y: int = Field(ge=0, le=20000)
    width: int = Field(ge=1, le=20000)
    height: int = Field(ge=1, le=20000)

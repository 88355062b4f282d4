"""URLs parsed the way browsers parse them (the WHATWG URL standard), for the URL policy.

What the policy checks must be what the browser (or HTTP client) will connect to: odd IPv4
spellings (``2130706433``, ``0x7f.1``, ``0177.0.0.1``), backslashes, userinfo, IDNA
mapping and percent-encoding are all read as a browser reads them, and the URL is
re-serialised so that clients see the same host the check saw.

The parsing is rust-url's (the WHATWG implementation Servo and Firefox use), shipped in
pydantic-core as :class:`pydantic_core.Url`. Around it this module adds only Shotline's
rules: http(s) only, a length limit, no IPv6 zone identifiers, no empty or dots-only host,
IDNA 2008 for international labels (stricter than UTS 46, like browsers' display rules),
and error messages that name the problem.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Final

import idna
from pydantic_core import Url, ValidationError

from shared.constants import MAX_URL_LENGTH
from shared.errors import UrlBlocked

IPAddress = IPv4Address | IPv6Address

#: The schemes Shotline fetches, with their default ports.
SCHEME_PORTS: Final = {"http": 80, "https": 443}

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_C0_AND_SPACE: Final = "".join(map(chr, range(0x21)))


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """An http(s) URL split the way a browser splits it."""

    scheme: str
    #: A lower-case IDNA (A-label) domain, or the IP address the host spells.
    host: str | IPAddress
    #: The effective port (the scheme's default when the URL names none).
    port: int
    #: The URL as a browser serialises it.
    url: str


def parse_url(url: str) -> ParsedUrl:
    """Split ``url`` the way a browser does (WHATWG URL), refusing non-http(s) URLs.

    Raises :class:`UrlBlocked` naming the problem for anything a browser would refuse,
    for other schemes and for URLs longer than :data:`MAX_URL_LENGTH`.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UrlBlocked(f"URL is longer than {MAX_URL_LENGTH} characters")
    url = re.sub("[\ud800-\udfff]", "\ufffd", url)  # lone surrogates, as a browser sees them
    match = _SCHEME.match(url.strip(_C0_AND_SPACE))
    if match is None:
        raise UrlBlocked("URL must start with http:// or https://")
    scheme = match.group()[:-1].lower().translate({9: None, 10: None, 13: None})
    if scheme not in SCHEME_PORTS:
        raise UrlBlocked(f"{scheme[:20]}: URLs are not allowed; only http and https")
    try:
        parsed = Url(url)
    except ValidationError as exc:
        raise _refusal(url, exc) from None
    host = _host(parsed, url)
    normalised = str(parsed)
    if len(normalised) > MAX_URL_LENGTH:
        raise UrlBlocked(f"URL is longer than {MAX_URL_LENGTH} characters once normalised")
    port = SCHEME_PORTS[scheme] if parsed.port is None else parsed.port
    return ParsedUrl(scheme, host, port, normalised)


def normalize_host(host: str) -> str | IPAddress:
    """Parse a URL host like a browser: an IP address, or a lower-case IDNA domain.

    ``[...]`` is an IPv6 literal (no zone ids); otherwise the host is percent-decoded,
    IDNA-mapped (UTS 46: full-width digits, ideographic dots...), and when it ends in a
    number parsed by the WHATWG IPv4 parser (``2130706433``, ``0x7f.1``, ``0177.0.0.1``
    are all 127.0.0.1). Raises :class:`UrlBlocked` for hosts a browser would refuse.
    """
    if any(char in host for char in "/?#\\@") or (":" in host and not host.startswith("[")):
        raise UrlBlocked(f"invalid host name: {host[:100]}")
    url = f"http://{host}/"
    try:
        parsed = Url(url)
    except ValidationError as exc:
        raise _refusal(url, exc) from None
    return _host(parsed, url)


def _host(parsed: Url, url: str) -> str | IPAddress:
    host = parsed.host or ""
    if host.startswith("["):
        return IPv6Address(host[1:-1])
    if not host.strip("."):
        raise UrlBlocked(f"invalid host name: {_raw_host(url)[:100]}")
    try:  # rust-url serialises every IPv4 host (any spelling) as a dotted quad
        return IPv4Address(host)
    except ValueError:
        pass
    _check_idna_2008(host)
    return host


def _check_idna_2008(domain: str) -> None:
    """Refuse international labels IDNA 2008 refuses (invalid Punycode, disallowed code
    points, the RFC 5893 bidi rule), as browsers do before showing or opening them."""
    labels = [label for label in domain.split(".") if label]
    if not any(label.startswith("xn--") for label in labels):
        return
    try:
        unicode_labels = [idna.ulabel(label) if label.startswith("xn--") else label
                          for label in labels]
        if any(unicodedata.bidirectional(char) in ("R", "AL", "AN")
               for label in unicode_labels for char in label):
            for label in unicode_labels:
                idna.check_bidi(label, check_ltr=True)
    except (idna.IDNAError, UnicodeError, IndexError) as exc:
        raise UrlBlocked(f"invalid international host name {domain[:100]!r}: {exc}") from exc


def _raw_host(url: str) -> str:
    """The host as written in ``url`` (for messages only; parsing is rust-url's)."""
    rest = _SCHEME.sub("", url.strip(_C0_AND_SPACE), count=1).lstrip("/\\")
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0]
    return authority.rpartition("@")[2]


def _refusal(url: str, exc: ValidationError) -> UrlBlocked:
    """The :class:`UrlBlocked` for a URL rust-url refuses, in Shotline's words."""
    errors = exc.errors(include_url=False)
    reason = str((errors[0].get("ctx") or {}).get("error", "")) if errors else ""
    raw = _raw_host(url)
    if reason == "empty host":
        return UrlBlocked("URL has no host")
    if reason == "invalid port number":
        port = raw.rpartition("]")[2].rpartition(":")[2] if ":" in raw else raw
        return UrlBlocked(f"invalid port: {port[:20]}")
    if reason == "invalid IPv6 address":
        if raw.startswith("[") and "%" in raw:
            return UrlBlocked(f"IPv6 zone identifiers are not allowed: {raw[:100]}")
        return UrlBlocked(f"invalid IPv6 address: {raw[:100]}")
    if reason == "invalid IPv4 address":
        return UrlBlocked(f"invalid IPv4 address: {raw[:100]}")
    if reason == "invalid international domain name":
        if "xn--" in raw.lower() or not raw.isascii():
            return UrlBlocked(f"invalid international host name {raw[:100]!r}")
        return UrlBlocked(f"invalid host name: {raw[:100]}")
    return UrlBlocked(f"invalid URL ({reason or 'unreadable'}): {url[:100]}")

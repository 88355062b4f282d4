"""URLs parsed the way browsers parse them (the WHATWG URL standard), for the URL policy.

What the policy checks must be what the browser (or HTTP client) will connect to: odd IPv4
spellings (``2130706433``, ``0x7f.1``, ``0177.0.0.1``), backslashes, userinfo, IDNA
mapping and percent-encoding are all read as a browser reads them, and the URL is
re-serialised so that clients see the same host the check saw.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Final
from urllib.parse import unquote

import idna

from shared.constants import MAX_URL_LENGTH
from shared.errors import UrlBlocked

IPAddress = IPv4Address | IPv6Address

#: The schemes Shotline fetches, with their default ports.
SCHEME_PORTS: Final = {"http": 80, "https": 443}

# WHATWG percent-encode sets, beyond C0 controls and non-ASCII (always encoded).
_USERINFO_SET: Final = frozenset(' "#<>?`{}/:;=@[\\]^|')
_PATH_SET: Final = frozenset(' "#<>?`{}')
_QUERY_SET: Final = frozenset(" \"#<>'")
_FRAGMENT_SET: Final = frozenset(' "<>`')
_FORBIDDEN_DOMAIN: Final = frozenset("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | frozenset(
    map(chr, range(0x20))
)
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_DIGITS: Final = {
    8: frozenset("01234567"),
    10: frozenset("0123456789"),
    16: frozenset("0123456789abcdefABCDEF"),
}


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
    url = url.strip("".join(map(chr, range(0x21)))).translate({9: None, 10: None, 13: None})
    match = _SCHEME.match(url)
    if match is None:
        raise UrlBlocked("URL must start with http:// or https://")
    scheme = match.group()[:-1].lower()
    if scheme not in SCHEME_PORTS:
        raise UrlBlocked(f"{scheme[:20]}: URLs are not allowed; only http and https")
    rest = url[match.end():].lstrip("/\\")
    end = re.search(r"[/?#\\]", rest)
    authority, tail = (rest[: end.start()], rest[end.start():]) if end else (rest, "")
    userinfo, at, hostport = authority.rpartition("@")
    raw_host, raw_port = _split_port(hostport)
    if not raw_host:
        raise UrlBlocked("URL has no host")
    host = normalize_host(raw_host)
    port = _parse_port(raw_port, SCHEME_PORTS[scheme])

    serialised = [scheme, "://"]
    if at:
        username, _, password = userinfo.partition(":")
        username, password = _encode(username, _USERINFO_SET), _encode(password, _USERINFO_SET)
        if username or password:
            serialised += [username, ":" + password if password else "", "@"]
    if isinstance(host, IPv6Address):
        serialised.append(f"[{host.compressed}]")
    else:
        serialised.append(str(host))
    if port != SCHEME_PORTS[scheme]:
        serialised.append(f":{port}")
    serialised.append(_serialise_tail(tail))
    normalised = "".join(serialised)
    if len(normalised) > MAX_URL_LENGTH:
        raise UrlBlocked(f"URL is longer than {MAX_URL_LENGTH} characters once normalised")
    return ParsedUrl(scheme, host, port, normalised)


def normalize_host(host: str) -> str | IPAddress:
    """Parse a URL host like a browser: an IP address, or a lower-case IDNA domain.

    ``[...]`` is an IPv6 literal (no zone ids); otherwise the host is percent-decoded,
    IDNA-mapped (UTS 46: full-width digits, ideographic dots...), and when it ends in a
    number parsed by the WHATWG IPv4 parser (``2130706433``, ``0x7f.1``, ``0177.0.0.1``
    are all 127.0.0.1). Raises :class:`UrlBlocked` for hosts a browser would refuse.
    """
    if host.startswith("["):
        if "%" in host:
            raise UrlBlocked(f"IPv6 zone identifiers are not allowed: {host[:100]}")
        try:
            if not host.endswith("]"):
                raise ValueError(host)
            return IPv6Address(host[1:-1])
        except ValueError:
            raise UrlBlocked(f"invalid IPv6 address: {host[:100]}") from None
    domain = _domain_to_ascii(unquote(host, errors="replace"))
    if not domain.strip(".") or not _FORBIDDEN_DOMAIN.isdisjoint(domain):
        raise UrlBlocked(f"invalid host name: {host[:100]}")
    if _ends_in_number(domain):
        return _parse_ipv4(domain)
    return domain


def _split_port(hostport: str) -> tuple[str, str]:
    inside_brackets = False
    for index, char in enumerate(hostport):
        if char == "[":
            inside_brackets = True
        elif char == "]":
            inside_brackets = False
        elif char == ":" and not inside_brackets:
            return hostport[:index], hostport[index + 1 :]
    return hostport, ""


def _parse_port(raw: str, default: int) -> int:
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) > 65535:
        raise UrlBlocked(f"invalid port: {raw[:20]}")
    return int(raw)


def _domain_to_ascii(domain: str) -> str:
    labels = domain.lower().split(".")
    if domain.isascii() and not any(label.startswith("xn--") for label in labels):
        return domain.lower()
    try:
        unicode_labels = idna.uts46_remap(domain, std3_rules=False, transitional=False).split(".")
        labels = [
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in unicode_labels
        ]
        # ulabel refuses invalid Punycode, as browsers do.
        unicode_labels = [idna.ulabel(label) if label.startswith("xn--") else label
                          for label in unicode_labels]
        if any(unicodedata.bidirectional(char) in ("R", "AL", "AN")
               for label in unicode_labels for char in label):
            for label in filter(None, unicode_labels):  # a bidi domain: every label obeys
                idna.check_bidi(label, check_ltr=True)  # the RFC 5893 rule, like browsers
    except (idna.IDNAError, UnicodeError, IndexError) as exc:
        raise UrlBlocked(f"invalid international host name {domain[:100]!r}: {exc}") from exc
    return ".".join(labels)


def _ends_in_number(domain: str) -> bool:
    parts = domain.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts.pop()
    last = parts[-1]
    return (last != "" and last.isascii() and last.isdigit()) or _ipv4_number(last) is not None


def _ipv4_number(part: str) -> int | None:
    radix = 10
    if part[:2] in ("0x", "0X"):
        radix, part = 16, part[2:]
    elif len(part) > 1 and part[0] == "0":
        radix, part = 8, part[1:]
    elif part == "":
        return None
    if not _DIGITS[radix].issuperset(part):
        return None
    return int(part, radix) if part else 0


def _parse_ipv4(domain: str) -> IPv4Address:
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    numbers = [_ipv4_number(part) for part in parts]
    valid = [n for n in numbers if n is not None]
    if (
        len(parts) > 4
        or len(valid) != len(numbers)
        or any(n > 255 for n in valid[:-1])
        or valid[-1] >= 256 ** (5 - len(valid))
    ):
        raise UrlBlocked(f"invalid IPv4 address: {domain[:100]}")
    return IPv4Address(valid[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(valid[:-1])))


def _serialise_tail(tail: str) -> str:
    tail, hash_mark, fragment = tail.partition("#")
    path, question_mark, query = tail.partition("?")
    segments: list[str] = []
    raw_segments = re.split(r"[/\\]", path)[1:] if path else [""]
    for index, segment in enumerate(raw_segments):
        last = index == len(raw_segments) - 1
        lowered = segment.lower()
        if lowered in ("..", ".%2e", "%2e.", "%2e%2e"):
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif lowered in (".", "%2e"):
            if last:
                segments.append("")
        else:
            segments.append(_encode(segment, _PATH_SET))
    serialised = "/" + "/".join(segments)
    if question_mark:
        serialised += "?" + _encode(query, _QUERY_SET)
    if hash_mark:
        serialised += "#" + _encode(fragment, _FRAGMENT_SET)
    return serialised


def _encode(text: str, encode_set: frozenset[str]) -> str:
    return "".join(
        "".join(f"%{byte:02X}" for byte in char.encode())
        if char in encode_set or not " " <= char <= "~"
        else char
        for char in text
    )

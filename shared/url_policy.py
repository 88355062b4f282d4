"""Which URLs and addresses Shotline may reach: the one check every outbound path uses.

A URL is parsed the way a browser parses it (the WHATWG URL standard: odd IPv4 spellings,
backslashes, userinfo, IDNA), its host is resolved, and *every* address is checked. Only
public unicast addresses on a few ports pass, unless the operator allowed a network
(``SHOTLINE_ALLOWED_NETWORKS``), on which any address and any port pass. Callers must use
:attr:`CheckedUrl.url`, the re-serialised URL, so that the client that connects reads the
same host as the check did.
"""

from __future__ import annotations

import asyncio
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote

import idna

from shared.constants import MAX_URL_LENGTH
from shared.errors import ConfigurationError, UrlBlocked

if TYPE_CHECKING:
    from shared.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
#: ``(host, port) -> addresses``; raises :class:`OSError` when the host does not resolve.
Resolver = Callable[[str, int], Iterable[IPAddress]]
AsyncResolver = Callable[[str, int], Awaitable[Iterable[IPAddress]]]

DEFAULT_ALLOWED_PORTS: Final = frozenset({80, 443, 8080, 8443})
_SCHEME_PORTS: Final = {"http": 80, "https": 443}

_HINT: Final = (
    "; only public addresses are allowed "
    "(operators can allow ranges with SHOTLINE_ALLOWED_NETWORKS)"
)

# Refused even where Python's ``is_global`` says otherwise (its tables vary across versions).
_BLOCKED_RANGES: Final = (
    ("0.0.0.0/8", "in the 'this network' range 0.0.0.0/8"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible IPv6 address"),
    ("64:ff9b::/96", "a NAT64 address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001:db8::/32", "a documentation address"),
    ("2001::/23", "an IETF protocol assignment address"),
    ("2002::/16", "a 6to4 address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "an SRv6 segment identifier address"),
    ("fc00::/7", "a unique local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_BLOCKED: Final[tuple[tuple[IPNetwork, str], ...]] = tuple(
    sorted(  # most specific first, so that ::1 is named loopback, not ::/96
        ((ip_network(cidr), reason) for cidr, reason in _BLOCKED_RANGES),
        key=lambda item: -item[0].prefixlen,
    )
)

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost6", "localhost6.localdomain6"})
_LOOPBACK_ADDRESSES: Final = (IPv4Address("127.0.0.1"), IPv6Address("::1"))

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
class CheckedUrl:
    """A URL the policy accepted: its normalised parts and the addresses that were checked."""

    scheme: str
    #: Lower-case IDNA (A-label) domain, or the canonical IP address (IPv6 without brackets).
    host: str
    #: The effective port (the scheme's default when the URL names none).
    port: int
    addresses: tuple[IPAddress, ...]
    #: The URL as a browser serialises it; pass this on, never the original string.
    url: str


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str | IPAddress
    port: int
    url: str


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """The rules: public addresses on ``allowed_ports``, anything in ``allowed_networks``."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_ports: frozenset[int] = DEFAULT_ALLOWED_PORTS

    def __post_init__(self) -> None:
        bad = sorted(port for port in self.allowed_ports if not 0 < port < 65536)
        if bad:
            raise ConfigurationError(f"allowed ports must be between 1 and 65535, not {bad}")

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        """The policy configured by ``ALLOWED_NETWORKS`` and ``ALLOWED_PORTS``."""
        return cls(
            allowed_networks=tuple(settings.allowed_networks),
            allowed_ports=frozenset(settings.allowed_ports),
        )

    def check_address(self, ip: IPAddress, port: int) -> None:
        """Raise :class:`UrlBlocked` unless connecting to ``ip`` on ``port`` is allowed.

        This is the check for each connection actually made (egress proxy, pinned clients).
        """
        problem = self._problem(ip, port, host=None)
        if problem is not None:
            raise UrlBlocked(problem)

    def check_url(self, url: str, *, resolver: Resolver | None = None) -> CheckedUrl:
        """Parse ``url`` like a browser, resolve its host and check every address.

        ``resolver`` defaults to :func:`resolve_host` (``getaddrinfo``); tests inject their
        own. Raises :class:`UrlBlocked` naming the reason when anything is refused.
        """
        target = _parse_url(url)
        if not isinstance(target.host, str):
            return self._verdict(target, (target.host,))
        addresses: Iterable[IPAddress] | None = _loopback_addresses(target.host)
        if addresses is None:
            try:
                addresses = (resolver or resolve_host)(target.host, target.port)
            except (OSError, UnicodeError) as exc:
                raise _unresolvable(target.host, exc) from exc
        return self._verdict(target, addresses)

    async def acheck_url(
        self, url: str, *, resolver: AsyncResolver | None = None
    ) -> CheckedUrl:
        """:meth:`check_url` for event loops: resolves with ``loop.getaddrinfo``."""
        target = _parse_url(url)
        if not isinstance(target.host, str):
            return self._verdict(target, (target.host,))
        addresses: Iterable[IPAddress] | None = _loopback_addresses(target.host)
        if addresses is None:
            try:
                addresses = await (resolver or aresolve_host)(target.host, target.port)
            except (OSError, UnicodeError) as exc:
                raise _unresolvable(target.host, exc) from exc
        return self._verdict(target, addresses)

    def _verdict(self, target: _Target, addresses: Iterable[IPAddress]) -> CheckedUrl:
        unique = tuple(dict.fromkeys(_strip_scope(ip) for ip in addresses))
        host = target.host if isinstance(target.host, str) else str(target.host)
        if not unique:
            raise UrlBlocked(f"could not resolve host {host}: it has no addresses")
        for ip in unique:
            problem = self._problem(ip, target.port, host=host if host != str(ip) else None)
            if problem is not None:
                raise UrlBlocked(problem)
        return CheckedUrl(target.scheme, host, target.port, unique, target.url)

    def _problem(self, ip: IPAddress, port: int, *, host: str | None) -> str | None:
        if not 0 < port < 65536:
            return f"port {port} is not a valid TCP port"
        unwrapped = ip.ipv4_mapped if isinstance(ip, IPv6Address) and ip.ipv4_mapped else ip
        if any(ip in net or unwrapped in net for net in self.allowed_networks):
            return None
        reason = _refusal_reason(unwrapped)
        if reason is not None:
            shown = str(ip) if unwrapped is ip else f"{ip} ({unwrapped})"
            if host is None:
                return f"{shown} is {reason}{_HINT}"
            return f"{host} resolves to {shown}, which is {reason}{_HINT}"
        if port not in self.allowed_ports:
            ports = ", ".join(map(str, sorted(self.allowed_ports))) or "none"
            return (
                f"port {port} is not allowed (allowed ports: {ports}; operators can change "
                "them with SHOTLINE_ALLOWED_PORTS or allow any port on a network with "
                "SHOTLINE_ALLOWED_NETWORKS)"
            )
        return None


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, with ``socket.getaddrinfo`` (the default resolver)."""
    return _addresses(socket.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM))


async def aresolve_host(host: str, port: int) -> list[IPAddress]:
    """:func:`resolve_host` without blocking the event loop (``loop.getaddrinfo``)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
    return _addresses(infos)


def _parse_url(url: str) -> _Target:
    """Split ``url`` the way a browser does (WHATWG URL), refusing non-http(s) URLs."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlBlocked(f"URL is longer than {MAX_URL_LENGTH} characters")
    url = re.sub("[\ud800-\udfff]", "\ufffd", url)  # lone surrogates, as a browser sees them
    url = url.strip("".join(map(chr, range(0x21)))).translate({9: None, 10: None, 13: None})
    match = _SCHEME.match(url)
    if match is None:
        raise UrlBlocked("URL must start with http:// or https://")
    scheme = match.group()[:-1].lower()
    if scheme not in _SCHEME_PORTS:
        raise UrlBlocked(f"{scheme[:20]}: URLs are not allowed; only http and https")
    rest = url[match.end():].lstrip("/\\")
    end = re.search(r"[/?#\\]", rest)
    authority, tail = (rest[: end.start()], rest[end.start():]) if end else (rest, "")
    userinfo, at, hostport = authority.rpartition("@")
    raw_host, raw_port = _split_port(hostport)
    if not raw_host:
        raise UrlBlocked("URL has no host")
    host = normalize_host(raw_host)
    port = _parse_port(raw_port, _SCHEME_PORTS[scheme])

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
    if port != _SCHEME_PORTS[scheme]:
        serialised.append(f":{port}")
    serialised.append(_serialise_tail(tail))
    normalised = "".join(serialised)
    if len(normalised) > MAX_URL_LENGTH:
        raise UrlBlocked(f"URL is longer than {MAX_URL_LENGTH} characters once normalised")
    return _Target(scheme, host, port, normalised)


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


def _refusal_reason(ip: IPAddress) -> str | None:
    for network, reason in _BLOCKED:
        if ip in network:
            return reason
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def _loopback_addresses(host: str) -> tuple[IPAddress, ...] | None:
    # Browsers answer these names themselves with loopback, whatever DNS would say.
    name = host.rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return _LOOPBACK_ADDRESSES
    return None


def _strip_scope(ip: IPAddress) -> IPAddress:
    return IPv6Address(ip.compressed.partition("%")[0]) if isinstance(ip, IPv6Address) else ip


def _addresses(infos: Iterable[tuple[object, ...]]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        if isinstance(sockaddr, tuple) and isinstance(sockaddr[0], str):
            found.append(ip_address(sockaddr[0].partition("%")[0]))  # drop any zone id
    return found


def _unresolvable(host: str, exc: BaseException) -> UrlBlocked:
    return UrlBlocked(
        f"could not resolve host {host} ({exc}); a host must resolve so that its addresses "
        "can be checked"
    )

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
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING, Final

from shared.errors import ConfigurationError, HostUnresolvable, UrlBlocked
from shared.url_parsing import IPAddress, ParsedUrl, normalize_host, parse_url

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = [
    "AsyncResolver",
    "CheckedUrl",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "UrlPolicy",
    "aresolve_host",
    "normalize_host",
    "resolve_host",
]

IPNetwork = IPv4Network | IPv6Network
#: ``(host, port) -> addresses``; raises :class:`OSError` when the host does not resolve.
Resolver = Callable[[str, int], Iterable[IPAddress]]
AsyncResolver = Callable[[str, int], Awaitable[Iterable[IPAddress]]]

DEFAULT_ALLOWED_PORTS: Final = frozenset({80, 443, 8080, 8443})

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
        target = parse_url(url)
        return self._verdict(target, _resolve(target.host, target.port, resolver))

    async def acheck_url(
        self, url: str, *, resolver: AsyncResolver | None = None
    ) -> CheckedUrl:
        """:meth:`check_url` for event loops: resolves with ``loop.getaddrinfo``."""
        target = parse_url(url)
        addresses = await _aresolve(target.host, target.port, resolver)
        return self._verdict(target, addresses)

    async def acheck_host(
        self, host: str | IPAddress, port: int, *, resolver: AsyncResolver | None = None
    ) -> tuple[IPAddress, ...]:
        """Resolve ``host`` once and check every address for a connection on ``port``.

        The check of the egress filter, which connects to the addresses returned and never
        resolves ``host`` again: that is what defeats DNS rebinding. ``host`` is read as a
        URL host (odd IPv4 spellings are addresses). Raises :class:`UrlBlocked`.
        """
        parsed = normalize_host(host) if isinstance(host, str) else host
        addresses = await _aresolve(parsed, port, resolver)
        name = parsed if isinstance(parsed, str) else str(parsed)
        return self._checked(name, port, addresses)

    def check_host(
        self, host: str | IPAddress, port: int, *, resolver: Resolver | None = None
    ) -> tuple[IPAddress, ...]:
        """:meth:`acheck_host` for threads (resolves with ``getaddrinfo``): the check of the
        pinned S3 connections (:mod:`shared.storage.pinned`). Raises :class:`UrlBlocked`."""
        parsed = normalize_host(host) if isinstance(host, str) else host
        name = parsed if isinstance(parsed, str) else str(parsed)
        return self._checked(name, port, _resolve(parsed, port, resolver))

    def _verdict(self, target: ParsedUrl, addresses: Iterable[IPAddress]) -> CheckedUrl:
        host = target.host if isinstance(target.host, str) else str(target.host)
        unique = self._checked(host, target.port, addresses)
        return CheckedUrl(target.scheme, host, target.port, unique, target.url)

    def _checked(
        self, host: str, port: int, addresses: Iterable[IPAddress]
    ) -> tuple[IPAddress, ...]:
        unique = tuple(dict.fromkeys(_strip_scope(ip) for ip in addresses))
        if not unique:
            raise HostUnresolvable(
                f"could not resolve host {host}: it has no addresses; check the URL for typos"
            )
        for ip in unique:
            problem = self._problem(ip, port, host=host if host != str(ip) else None)
            if problem is not None:
                raise UrlBlocked(problem)
        return unique

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


def _resolve(host: str | IPAddress, port: int, resolver: Resolver | None) -> Iterable[IPAddress]:
    if not isinstance(host, str):
        return (host,)
    addresses = _loopback_addresses(host)
    if addresses is not None:
        return addresses
    try:
        return (resolver or resolve_host)(host, port)
    except (OSError, UnicodeError) as exc:
        raise _unresolvable(host, exc) from exc


async def _aresolve(
    host: str | IPAddress, port: int, resolver: AsyncResolver | None
) -> Iterable[IPAddress]:
    if not isinstance(host, str):
        return (host,)
    addresses = _loopback_addresses(host)
    if addresses is not None:
        return addresses
    try:
        return await (resolver or aresolve_host)(host, port)
    except (OSError, UnicodeError) as exc:
        raise _unresolvable(host, exc) from exc


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, with ``socket.getaddrinfo`` (the default resolver)."""
    return _addresses(socket.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM))


async def aresolve_host(host: str, port: int) -> list[IPAddress]:
    """:func:`resolve_host` without blocking the event loop (``loop.getaddrinfo``)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
    return _addresses(infos)


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


def _unresolvable(host: str, exc: BaseException) -> HostUnresolvable:
    return HostUnresolvable(
        f"could not resolve host {host} ({exc}): check the URL for typos and that the host "
        "exists"
    )

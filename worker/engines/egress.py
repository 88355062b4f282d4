"""The egress filter: every connection Chromium makes is checked, then pinned to the checked address.

Checking the submitted URL in Python does not bind the browser: redirects, iframes, images,
fonts, ``fetch``, WebSockets and page JavaScript make Chromium connect elsewhere after the
check, and Chromium resolves names again (DNS rebinding). So Chromium gets no direct route
out: each browser context is given a SOCKS5 proxy, an :class:`EgressGate` listening on
``127.0.0.1`` in the worker's own event loop. For each connection the gate resolves the
host *once per capture* (:mod:`worker.engines.lookups`: the first connection's answer
serves every later one, lookups bounded in number and time), checks every address with the
:class:`~shared.url_policy.UrlPolicy` on every connection, and connects to a checked
address; a refused connection is answered "not allowed by ruleset", recorded and logged.

Why SOCKS5 and a gate of our own rather than an HTTP proxy library (proxy.py, mitmproxy):
Chromium sends every scheme (http, https, ws, wss) through a SOCKS5 proxy as one plain
``CONNECT host:port`` with the host *name* (it resolves nothing itself), so the gate needs
no HTTP parsing, request rewriting or TLS handling at all; what it must do (resolve with
the policy's resolver, pin the address, attribute each connection to one capture) is
exactly what those libraries do not offer as hooks inside our event loop. The protocol
part is the small CONNECT subset of RFC 1928 that Chromium speaks.

One gate per browser context (not one proxy with credentials per context: Chromium has no
SOCKS5 authentication, and HTTP proxy credentials would need Playwright to intercept every
request) gives exact per-capture accounting. The browser itself is launched with a gate
that refuses everything, so nothing outside a capture's context has a way out either.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final
from urllib.parse import urlsplit

import structlog

from shared.errors import HostUnresolvable, UrlBlocked
from shared.url_parsing import IPAddress
from shared.url_policy import AsyncResolver, UrlPolicy
from worker.engines.lookups import HostLookups

log = structlog.get_logger("shotline.engines.egress")

SOCKS_VERSION: Final = 5
NO_AUTHENTICATION: Final = 0x00
NO_ACCEPTABLE_METHOD: Final = 0xFF
CMD_CONNECT: Final = 0x01
ATYP_IPV4: Final = 0x01
ATYP_DOMAIN: Final = 0x03
ATYP_IPV6: Final = 0x04

#: SOCKS5 reply codes (RFC 1928 section 6).
REPLY_SUCCEEDED: Final = 0x00
REPLY_GENERAL_FAILURE: Final = 0x01
REPLY_NOT_ALLOWED: Final = 0x02
REPLY_HOST_UNREACHABLE: Final = 0x04
REPLY_CONNECTION_REFUSED: Final = 0x05
REPLY_COMMAND_NOT_SUPPORTED: Final = 0x07
REPLY_ADDRESS_TYPE_NOT_SUPPORTED: Final = 0x08

#: Default ports of the schemes a browser context may ask for.
DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}

#: Seconds a client has to send its SOCKS greeting and request.
HANDSHAKE_TIMEOUT_S: Final = 10.0

#: Seconds to wait for an upstream TCP connection, per address tried.
CONNECT_TIMEOUT_S: Final = 10.0

#: Bytes read at once when relaying.
RELAY_CHUNK: Final = 64 * 1024

#: Refusals logged one by one per gate; past this they are only counted (and summed up
#: when the gate closes), so a page firing thousands of requests cannot flood the logs.
MAX_LOGGED_REFUSALS: Final = 20

#: The reason given to connections that reach the launch-level gate.
OUTSIDE_CAPTURE: Final = "the connection does not belong to any capture"


class SocksError(Exception):
    """Raised when a client does not speak the SOCKS5 CONNECT subset the gate serves."""

    def __init__(self, message: str, *, reply: int | None = None) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Refusal:
    """A connection the gate refused: where it was going and why."""

    host: str
    port: int
    reason: str


def target_of(url: str) -> tuple[str, int] | None:
    """The ``(host, port)`` a browser connects to for ``url``, in the gate's spelling.

    None for URLs that open no connection (``about:``, ``data:``, ``blob:``...).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return _canonical_host(parts.hostname), port or DEFAULT_PORTS[scheme]


def _host_key(host: str | IPAddress) -> str:
    return _canonical_host(host) if isinstance(host, str) else str(host)


def _canonical_host(host: str) -> str:
    bare = host.strip("[]").lower().rstrip(".")
    with contextlib.suppress(ValueError):
        return str(ip_address(bare))
    return bare


class EgressGate:
    """A SOCKS5 listener on ``127.0.0.1`` through which one browser context reaches the network.

    Each CONNECT is checked with ``policy`` (each host resolved once per gate with
    ``resolver``, default ``getaddrinfo`` in the lookup pool; every address checked on every
    connection) and tunnelled to a checked address. A gate
    without a policy refuses every connection (the gate the browser is launched with).
    ``request_id`` goes into the log lines. Use :meth:`start` / :meth:`aclose`, or
    ``async with``.
    """

    def __init__(
        self,
        policy: UrlPolicy | None,
        *,
        resolver: AsyncResolver | None = None,
        request_id: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self._policy = policy
        #: This gate's (this capture's) host lookups: each host resolved once.
        self.lookups = HostLookups(resolver)
        #: Goes into the log lines; a gate opened ahead of its capture gets it when taken.
        self.request_id = request_id
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._refusals: list[Refusal] = []
        self._refused: dict[tuple[str, int], str] = {}
        self._failed: dict[tuple[str, int], str] = {}
        self._refused_outside = 0
        self._tunnels = 0
        self.port = 0

    @property
    def proxy_server(self) -> str:
        """The proxy URL to give Chromium (``socks5://127.0.0.1:<port>``)."""
        if self._server is None:
            raise RuntimeError("the egress gate is not started")
        return f"socks5://127.0.0.1:{self.port}"

    @property
    def refusals(self) -> list[Refusal]:
        """Every connection refused so far, in order (a gate without a policy, the
        browser's own for connections outside any capture, counts them only)."""
        return list(self._refusals)

    @property
    def blocked(self) -> int:
        """How many connections were refused."""
        return len(self._refusals) + self._refused_outside

    @property
    def tunnels(self) -> int:
        """How many connections were let through."""
        return self._tunnels

    def refusal_for(self, url: str) -> str | None:
        """Why a connection for ``url`` was refused by the policy, if it was (None otherwise)."""
        target = target_of(url)
        return None if target is None else self._refused.get(target)

    def failure_for(self, url: str) -> str | None:
        """The network error (Chromium's name for it) of the last failed connection for ``url``.

        Chromium reports every failure behind a SOCKS proxy as ``ERR_SOCKS_CONNECTION_FAILED``;
        this tells what really happened: ``net::ERR_NAME_NOT_RESOLVED``,
        ``net::ERR_CONNECTION_REFUSED``, ``net::ERR_CONNECTION_TIMED_OUT`` or
        ``net::ERR_ADDRESS_UNREACHABLE``.
        """
        target = target_of(url)
        return None if target is None else self._failed.get(target)

    async def start(self) -> None:
        """Listen on an ephemeral port of ``127.0.0.1``. Idempotent."""
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        """Stop listening and cut every tunnel still open. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.lookups.close()
        handlers = set(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)
        await server.wait_closed()
        if len(self._refusals) > MAX_LOGGED_REFUSALS:
            log.info(
                "The browser's connections were refused more often than logged.",
                blocked=len(self._refusals), logged=MAX_LOGGED_REFUSALS,
                request_id=self.request_id,
            )

    async def __aenter__(self) -> EgressGate:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: handshake, check, connect, relay (asyncio runs it as a task)."""
        task = asyncio.current_task()
        if task is not None:  # remembered so that aclose() can cut the tunnel
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                    host, port = await _read_request(reader, writer)
            except SocksError as exc:
                if exc.reply is not None:
                    await _reply(writer, exc.reply)
                return
            try:
                addresses = await self._check(host, port)
            except HostUnresolvable:
                self._fail(host, port, "net::ERR_NAME_NOT_RESOLVED")
                await _reply(writer, REPLY_HOST_UNREACHABLE)
                return
            except UrlBlocked as exc:
                self._refuse(host, port, exc.message)
                await _reply(writer, REPLY_NOT_ALLOWED)
                return
            opened = await self._connect(addresses, port)
            if isinstance(opened, str):
                self._fail(host, port, opened)
                code = REPLY_CONNECTION_REFUSED if "REFUSED" in opened else REPLY_HOST_UNREACHABLE
                await _reply(writer, code)
                return
            up_reader, upstream = opened
            self._tunnels += 1
            await _reply(writer, REPLY_SUCCEEDED, upstream.get_extra_info("sockname"))
            await _relay(reader, writer, up_reader, upstream)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # Only aclose() cancels a connection; ending normally keeps Python 3.11's stream
            # protocol from logging the cancellation as an error.
            pass
        except Exception:  # a bug must cut this connection (fail closed), never the gate
            log.exception("The egress gate failed on a connection; it was cut.",
                          request_id=self.request_id)
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    async def _check(self, host: str | IPAddress, port: int) -> tuple[IPAddress, ...]:
        if self._policy is None:
            raise UrlBlocked(OUTSIDE_CAPTURE)
        return await self._policy.acheck_host(host, port, resolver=self.lookups.resolve)

    def _fail(self, host: str | IPAddress, port: int, error: str) -> None:
        self._failed[(_host_key(host), port)] = error

    def _refuse(self, host: str | IPAddress, port: int, reason: str) -> None:
        name = _host_key(host)
        if self._policy is None:  # Chromium's own background requests: expected, quiet
            # Counted, not kept: this gate lives as long as the browser.
            self._refused_outside += 1
            log.debug("Refused a connection from outside any capture.", host=name, port=port)
            return
        self._refusals.append(Refusal(name, port, reason))
        self._refused.setdefault((name, port), reason)
        if len(self._refusals) <= MAX_LOGGED_REFUSALS:
            log.info(
                "Refused a connection the browser tried to open.",
                host=name, port=port, reason=reason, request_id=self.request_id,
            )

    async def _connect(
        self, addresses: tuple[IPAddress, ...], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        """A connection to the first checked address that answers (an address, never a name:
        nothing is resolved again), or the network error name of the last failure."""
        error = "net::ERR_ADDRESS_UNREACHABLE"
        for ip in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    return await asyncio.open_connection(str(ip), port)
            except ConnectionRefusedError:
                error = "net::ERR_CONNECTION_REFUSED"
            except TimeoutError:
                error = "net::ERR_CONNECTION_TIMED_OUT"
            except OSError:
                error = "net::ERR_ADDRESS_UNREACHABLE"
        return error


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[str | IPAddress, int]:
    """Read the greeting and the CONNECT request; answer the greeting. Returns the target."""
    version, count = await reader.readexactly(2)
    if version != SOCKS_VERSION:
        raise SocksError(f"not SOCKS5 (version byte {version})")
    methods = await reader.readexactly(count)
    if NO_AUTHENTICATION not in methods:
        writer.write(bytes((SOCKS_VERSION, NO_ACCEPTABLE_METHOD)))
        await writer.drain()
        raise SocksError("the client offers no method without authentication")
    writer.write(bytes((SOCKS_VERSION, NO_AUTHENTICATION)))
    await writer.drain()
    version, command, _reserved, address_type = await reader.readexactly(4)
    if version != SOCKS_VERSION:
        raise SocksError(f"not SOCKS5 (version byte {version})", reply=REPLY_GENERAL_FAILURE)
    host: str | IPAddress
    if address_type == ATYP_IPV4:
        host = IPv4Address(await reader.readexactly(4))
    elif address_type == ATYP_IPV6:
        host = IPv6Address(await reader.readexactly(16))
    elif address_type == ATYP_DOMAIN:
        (length,) = await reader.readexactly(1)
        host = _domain_host((await reader.readexactly(length)).decode("ascii", "replace"))
    else:
        raise SocksError(f"address type {address_type}", reply=REPLY_ADDRESS_TYPE_NOT_SUPPORTED)
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    if command != CMD_CONNECT:  # BIND and UDP ASSOCIATE never: TCP CONNECT only
        raise SocksError(f"command {command}", reply=REPLY_COMMAND_NOT_SUPPORTED)
    return host, port


def _domain_host(name: str) -> str | IPAddress:
    """A domain-type target: an IP literal when it spells one (``[::1]``), else the name."""
    with contextlib.suppress(ValueError):
        return ip_address(name.strip("[]"))
    return name


async def _reply(
    writer: asyncio.StreamWriter, code: int, bound: tuple[object, ...] | None = None
) -> None:
    """Send a SOCKS5 reply with the bound address (``0.0.0.0:0`` when there is none)."""
    address_type, packed, port = ATYP_IPV4, bytes(4), 0
    if bound is not None and isinstance(bound[0], str):
        ip = ip_address(bound[0].partition("%")[0])
        port = int(str(bound[1]))
        if isinstance(ip, IPv6Address):
            address_type, packed = ATYP_IPV6, ip.packed
        else:
            packed = ip.packed
    writer.write(bytes((SOCKS_VERSION, code, 0, address_type)) + packed + struct.pack("!H", port))
    await writer.drain()


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes."""
    pumps = {
        asyncio.ensure_future(_pump(client_reader, upstream_writer)),
        asyncio.ensure_future(_pump(upstream_reader, client_writer)),
    }
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.wait(pumps)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await reader.read(RELAY_CHUNK):
            writer.write(chunk)
            await writer.drain()

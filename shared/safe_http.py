"""An httpx client that can only reach what the URL policy allows, DNS rebinding included.

Checking a URL and then letting the HTTP client resolve its host again leaves a gap: a
name can resolve to a public address for the check and to ``127.0.0.1`` for the
connection. Here the check happens where the connection is made: httpcore asks its network
backend to connect to ``(host, port)``; :class:`PinnedBackend` resolves the host once, runs
every address through :class:`shared.url_policy.UrlPolicy`, and connects to those checked
addresses only. The URL is not rewritten, so the ``Host`` header, TLS SNI and certificate
verification still use the host name. Proxy settings from the environment are ignored and
redirects are not followed (a redirect is the caller's decision, and a new check).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import Final

import httpcore
import httpx

from shared.errors import UrlBlocked
from shared.url_policy import AsyncResolver, UrlPolicy

DEFAULT_TIMEOUT_SECONDS: Final = 15.0


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy accepted for this
    connection's own resolution of the host."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: AsyncResolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host`` once, check every address, connect to the first that answers.

        Raises :class:`shared.errors.UrlBlocked` when any address (or the port) is refused.
        """
        literal = f"[{host}]" if ":" in host else host
        checked = await self.policy.acheck_url(f"http://{literal}:{port}/", resolver=self.resolver)
        failure: Exception | None = None
        for address in checked.addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # acheck_url never returns an empty address list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets are never an allowed destination."""
        raise UrlBlocked("connections to Unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool on a :class:`PinnedBackend`."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: AsyncResolver | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20,
                                        keepalive_expiry=5.0)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend; build the same
        # pool (the arguments httpx itself uses) with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=PinnedBackend(policy, resolver=resolver),
        )


def safe_async_client(
    policy: UrlPolicy,
    *,
    resolver: AsyncResolver | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    verify: ssl.SSLContext | bool = True,
    headers: Mapping[str, str] | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection is checked by ``policy``.

    No proxies from the environment (``trust_env=False``), no redirects followed, and
    ``timeout`` seconds for each of connect, read, write and pool wait. ``resolver`` (host,
    port → addresses) replaces DNS, for tests.
    """
    return httpx.AsyncClient(
        transport=PinnedTransport(policy, resolver=resolver, verify=verify, limits=limits),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )

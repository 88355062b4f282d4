"""S3 clients that can only connect where the URL policy allows, DNS rebinding included.

The endpoint of a key's own bucket is checked by the URL policy when it is set and before
every upload (:func:`shared.storage.destinations.check_endpoint`), but botocore's urllib3
resolves the host name again when it connects: a name can resolve to a public address for
the check and to ``127.0.0.1``, ``169.254.169.254`` or a private address for the
connection. This module moves the check to where the connection is made, as
:mod:`shared.safe_http` does for httpx: each new connection resolves the host once, runs
every address through :meth:`shared.url_policy.UrlPolicy.check_host`, and connects to those
checked addresses only. The URL is not rewritten, so the ``Host`` header, the SigV4
signature (which signs the host), TLS SNI and certificate verification all keep the name.
Kept-alive connections are reused as they are: they were checked when opened.

How it plugs in, and what of botocore/urllib3 it relies on:

- botocore's documented ``before-send`` event lets a handler answer a request instead of
  botocore's own HTTP session. :func:`pin_connections` registers :meth:`PinnedSession.before_send`
  there, on one client only (each client has its own copy of the event emitter).
- :class:`PinnedSession` is botocore's own :class:`~botocore.httpsession.URLLib3Session`
  (same request handling, timeouts, error mapping, ``Expect: 100-continue``), without
  proxies from the environment (a proxy would resolve the name itself), and with urllib3
  pools whose ``ConnectionCls`` (urllib3's customisation point for connections) is ours.
  Setting the pool classes touches one private attribute, ``URLLib3Session._manager``,
  exactly as botocore itself does in ``__init__``; :class:`PinnedSession` fails loudly
  (``RuntimeError``) if a botocore upgrade moves it, and tests/test_pinned_buckets.py
  fails if a connection ever reaches an address the policy refused.
- The connections override urllib3's ``HTTPConnection._new_conn`` (the method that opens
  the socket; ``connect()`` wraps TLS around whatever it returns), keeping urllib3's error
  types so that botocore maps and retries connection failures as usual. A refusal by the
  policy is not retried: it leaves the client as :class:`shared.errors.UrlBlocked`.

Hand-written because no maintained library plugs a resolve-check-connect step into
botocore (``advocate`` wraps requests, and is unmaintained), and because the check must be
Shotline's own URL policy, the one every other outbound path uses.

Only customers' buckets are pinned. The default storage (``SHOTLINE_S3_ENDPOINT_URL``) is
operator configuration, not user input, and usually a private address (MinIO beside the
workers) that the policy refuses unless ``ALLOWED_NETWORKS`` opens it, which would also
open it to customers' endpoints and to captured pages: pinning it would break working
deployments to defend against no one.
"""

from __future__ import annotations

import functools
import socket
import sys
from typing import TYPE_CHECKING, Any, cast

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
    AWSPreparedRequest,
    AWSResponse,
)
from botocore.exceptions import HTTPClientError
from botocore.httpsession import URLLib3Session
from urllib3 import HTTPConnectionPool, PoolManager
from urllib3.connection import HTTPConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from shared.errors import HostUnresolvable, UrlBlocked
from shared.url_policy import UrlPolicy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _connect_checked(conn: HTTPConnection, policy: UrlPolicy) -> socket.socket:
    """urllib3's ``_new_conn``, with the resolution replaced by the policy's checked one."""
    host = f"[{conn.host}]" if ":" in conn.host else conn.host
    try:
        addresses = policy.check_host(host, conn.port)
    except HostUnresolvable as exc:  # a DNS failure, retried like any connection error
        raise NewConnectionError(conn, f"Failed to resolve {conn.host}: {exc.message}") from exc
    failure: Exception | None = None
    for address in addresses:
        try:
            sock = create_connection((str(address), conn.port), conn.timeout,
                                     source_address=conn.source_address,
                                     socket_options=conn.socket_options)
        except TimeoutError as exc:
            failure = ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})")
            failure.__cause__ = exc
        except OSError as exc:
            failure = NewConnectionError(conn, f"Failed to establish a new connection: {exc}")
            failure.__cause__ = exc
        else:
            sys.audit("http.client.connect", conn, conn.host, conn.port)
            return sock
    assert failure is not None  # check_host never returns an empty address list
    raise failure


class PinnedHTTPConnection(AWSHTTPConnection):
    """botocore's HTTP connection, opened only to addresses ``policy`` accepted."""

    def __init__(self, *args: Any, policy: UrlPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.policy)


class PinnedHTTPSConnection(AWSHTTPSConnection):
    """botocore's HTTPS connection, opened only to addresses ``policy`` accepted (TLS,
    SNI and the certificate check still use the host name)."""

    def __init__(self, *args: Any, policy: UrlPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.policy)


class PinnedHTTPConnectionPool(AWSHTTPConnectionPool):
    """A pool of :class:`PinnedHTTPConnection` (``policy`` reaches them as a connection
    keyword)."""

    ConnectionCls = PinnedHTTPConnection


class PinnedHTTPSConnectionPool(AWSHTTPSConnectionPool):
    """A pool of :class:`PinnedHTTPSConnection`."""

    ConnectionCls = PinnedHTTPSConnection


class PinnedSession(URLLib3Session):
    """botocore's HTTP session, with every new connection checked by ``policy``.

    ``verify``: whether to check certificates (``True``: against the default bundle,
    certifi's; never ``AWS_CA_BUNDLE``, which is the operator's trust for its own S3), or the
    path of a CA bundle.
    """

    def __init__(self, policy: UrlPolicy, *, connect_timeout: float, read_timeout: float,
                 max_pool_connections: int, verify: bool | str = True) -> None:
        options = cast(Any, HTTPConnection.default_socket_options)  # botocore's: TCP_NODELAY
        super().__init__(verify=cast(Any, verify), proxies={},
                         timeout=cast(Any, (connect_timeout, read_timeout)),
                         max_pool_connections=max_pool_connections, socket_options=options)
        manager = getattr(self, "_manager", None)
        if not isinstance(manager, PoolManager):
            raise RuntimeError("botocore's URLLib3Session no longer keeps its urllib3 PoolManager"
                               " in _manager: shared/storage/pinned.py needs updating")
        # urllib3 builds each pool as pool_cls(host, port, **pool_kw) and passes unknown
        # keywords on to the connections: the partials hand them the policy.
        pools = {"http": functools.partial(PinnedHTTPConnectionPool, policy=policy),
                 "https": functools.partial(PinnedHTTPSConnectionPool, policy=policy)}
        manager.pool_classes_by_scheme = cast(dict[str, type[HTTPConnectionPool]], pools)
        self.policy = policy

    def send(self, request: AWSPreparedRequest | Any) -> AWSResponse:
        """Send ``request``; a connection the policy refused raises :class:`UrlBlocked`
        (which botocore does not retry) rather than botocore's ``HTTPClientError``."""
        try:
            return super().send(request)
        except HTTPClientError as exc:
            refusal = exc.kwargs.get("error")
            if isinstance(refusal, UrlBlocked):
                raise refusal from None
            raise

    def before_send(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        """The ``before-send`` handler: send the request here, not through botocore's own
        (unpinned) session."""
        return self.send(request)


def pin_connections(client: S3Client, policy: UrlPolicy) -> PinnedSession:
    """Make every request of ``client`` go through a :class:`PinnedSession` checked by
    ``policy``, with the client's own timeouts and pool size. Close the returned session
    with the client."""
    config: Any = client.meta.config  # botocore sets these at run time; its stubs omit them
    session = PinnedSession(policy, connect_timeout=float(config.connect_timeout),
                            read_timeout=float(config.read_timeout),
                            max_pool_connections=int(config.max_pool_connections))
    # The stubs type every handler as returning None; before-send handlers may answer.
    handler: Any = session.before_send
    client.meta.events.register("before-send.s3", handler)
    return session

"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 answering from a script."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.quiet_http import QuietHTTPServer


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status and headers, or no answer until released (``hang``)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        index = self.server.owner.record(
            Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()))
        reply = self.server.owner.reply_for(index)
        if reply.hang:
            self.server.owner.release.wait(120)
            reply = Reply(200)
        with contextlib.suppress(OSError):
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    do_GET = do_POST


class _Server(QuietHTTPServer):
    daemon_threads = True
    owner: WebhookReceiver


class WebhookReceiver:
    """Answers the n-th request with ``replies[n]`` (then ``default``); records every request.

    ``release`` lets hanging requests answer 200; it is set when the receiver closes.
    """

    def __init__(self, replies: Sequence[Reply] = (), *, default: Reply | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies)
        self.default = default or Reply(200)
        self.received: list[Received] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.port = int(self.httpd.server_address[1])
        self.scheme = "http"
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = "/hook") -> str:
        """Absolute URL of ``path`` on this receiver."""
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def record(self, request: Received) -> int:
        """Keep ``request``; returns its 0-based arrival index."""
        with self._arrived:
            self.received.append(request)
            self._arrived.notify_all()
            return len(self.received) - 1

    def reply_for(self, index: int) -> Reply:
        """The scripted answer to the ``index``-th request."""
        return self.replies[index] if index < len(self.replies) else self.default

    def wait_for(self, count: int, *, timeout: float = 30.0) -> list[Received]:
        """Block until ``count`` requests arrived; returns them (AssertionError on timeout)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} of {count} requests after {timeout}s")
            return list(self.received)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

"""The two servers of the host the stack talks to: the test pages (tests/pages, served by the
test suite's own handler) and a webhook receiver. Both listen on the compose network's
gateway address, which the containers reach and the URL policy allows for this test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import PageHandler


@dataclass(frozen=True)
class Delivery:
    """One webhook request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _ReceiverHandler)
        self.deliveries: list[Delivery] = []


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.deliveries.append(
            Delivery({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()


@dataclass
class LocalServers:
    """The page server and the webhook receiver, with their base URLs."""

    pages: ThreadingHTTPServer
    receiver: _Receiver
    host: str

    def page_url(self, path: str) -> str:
        return f"http://{self.host}:{self.pages.server_address[1]}{path}"

    @property
    def webhook_url(self) -> str:
        return f"http://{self.host}:{self.receiver.server_address[1]}/hooks/shotline"

    def wait_for_deliveries(self, count: int, timeout: float) -> list[Delivery]:
        """The first ``count`` webhook deliveries, once they arrived."""
        deadline = time.monotonic() + timeout
        while len(self.receiver.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return list(self.receiver.deliveries)


@contextlib.contextmanager
def local_servers(host: str, page_port: int, webhook_port: int) -> Iterator[LocalServers]:
    """Both servers on ``host``, stopped afterwards."""
    pages = ThreadingHTTPServer((host, page_port), PageHandler)
    pages.daemon_threads = True
    # PageHandler records what it serves on its server.
    pages.requests = []  # type: ignore[attr-defined]
    pages.headers_seen = []  # type: ignore[attr-defined]
    receiver = _Receiver((host, webhook_port))
    threads = [threading.Thread(target=server.serve_forever, daemon=True)
               for server in (pages, receiver)]
    for thread in threads:
        thread.start()
    try:
        yield LocalServers(pages, receiver, host)
    finally:
        for server in (pages, receiver):
            server.shutdown()
            server.server_close()

"""A canary: a host that must never be reached, counting every TCP connection and UDP datagram.

It listens on ``127.0.0.2``, a loopback address outside what the SSRF tests allow
(``127.0.0.1/32``), on one port for TCP (answering HTTP, so that a reached canary would
also *look* like a success to the page) and the same port for UDP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.quiet_http import QuietHTTPServer

CANARY_HOST = "127.0.0.2"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        body = b"canary reached"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _CountingServer(QuietHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.connections: list[tuple[str, int]] = []
        self.paths: list[str] = []

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections.append(client_address)  # counted before a single byte is read
        return True


class Canary:
    """TCP (HTTP) and UDP listeners on ``host:port`` (a free port when ``port`` is 0)."""

    def __init__(self, host: str = CANARY_HOST, port: int = 0) -> None:
        self.tcp = _CountingServer((host, port))
        self.host = host
        self.port = int(self.tcp.server_address[1])
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, self.port))
        self.udp.settimeout(0.1)
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self.tcp.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]

    @property
    def address(self) -> str:
        """``host:port``, as it goes into a URL."""
        return f"{self.host}:{self.port}"

    @property
    def hits(self) -> int:
        """TCP connections accepted plus UDP datagrams received: must stay 0."""
        return len(self.tcp.connections) + len(self.datagrams)

    def report(self) -> str:
        return (f"canary {self.address}: {len(self.tcp.connections)} TCP connections "
                f"(paths {self.tcp.paths}), {len(self.datagrams)} UDP datagrams")

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.udp.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)

    def __enter__(self) -> Canary:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.tcp.shutdown()
        self.tcp.server_close()
        for thread in self._threads[1:]:
            thread.join(timeout=2)
        self.udp.close()

"""The test servers stay quiet when a client hangs up, and still report real handler bugs."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tests.quiet_http import QuietHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/hung-up":
            raise ConnectionResetError(104, "Connection reset by peer")
        raise ValueError("a bug in the handler")


@pytest.mark.parametrize(("path", "printed"), [("/hung-up", False), ("/bug", True)])
def test_only_real_handler_errors_print_a_traceback(
    capfd: pytest.CaptureFixture[str], path: str, printed: bool
) -> None:
    server = QuietHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    err = capfd.readouterr().err
    assert ("Traceback" in err) is printed, err

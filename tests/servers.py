"""Real servers for the test suite: redis-server, a local page server, child processes."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import SimpleHTTPRequestHandler
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from shared.url_policy import UrlPolicy
from tests.quiet_http import QuietHTTPServer

PAGES_DIR = Path(__file__).parent / "pages"

#: The URL policy of engines under test: loopback is allowed (``localhost`` too, which
#: needs both ``127.0.0.1`` and ``::1``), so pages on the page server can be captured.
LOOPBACK_POLICY = UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"), ip_network("::1/128")))
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def redis_server_binary() -> str:
    """Path of redis-server; a missing binary fails the suite (it is installed by make install)."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server not found: run `make install`")
    return path


@contextlib.contextmanager
def run_redis(directory: Path, *, port: int | None = None, appendonly: bool = False
              ) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A private redis-server on a free port, stopped afterwards."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--dir", str(directory), "--daemonize", "no",
        "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always",
        "--maxmemory-policy", "noeviction", "--logfile", str(directory / "redis.log"),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield process, port
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; always reaps."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child process: ours without SHOTLINE_* settings, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOTLINE_")}
    env.update(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def python_command(*args: str) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *args]


class PageHandler(SimpleHTTPRequestHandler):
    """Serves tests/pages plus a few dynamic paths:

    ``/status/<code>`` answers that status, ``/slow?ms=N`` answers after N ms,
    ``/redirect?to=URL`` answers 302 to URL, ``/echo-headers`` returns the request headers,
    ``/color.png?rgb=RRGGBB&w=W&h=H`` a one-colour PNG (after ``ms`` when given),
    ``/basic-auth?user=U&password=P`` 401 unless those credentials come with the request,
    ``/ws`` a WebSocket held open, ``/events`` an endless EventSource stream; POSTs get 204.
    Every request's headers are kept in ``server.headers_seen`` as (path, headers).
    """

    server_version = "ShotlineTestPages/1"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, directory=str(PAGES_DIR), **kwargs)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.server.headers_seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        if parts.path.startswith("/status/"):
            code = int(parts.path.rsplit("/", 1)[1])
            self._html(code, f"<h1>status {code}</h1>")
        elif parts.path == "/slow":
            time.sleep(int(query.get("ms", ["5000"])[0]) / 1000)
            self._html(200, "<h1>slow</h1>")
        elif parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/color.png":
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
            self._png(query.get("rgb", ["ff0000"])[0], int(query.get("w", ["100"])[0]),
                      int(query.get("h", ["100"])[0]))
        elif parts.path == "/basic-auth":
            expected = base64.b64encode(
                f"{query['user'][0]}:{query['password'][0]}".encode()
            ).decode()
            if self.headers.get("Authorization") == f"Basic {expected}":
                self._html(200, "<h1>welcome</h1>")
            else:
                body = b"<!doctype html><h1>401 authentication required</h1>"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="shotline-test"')
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)
        elif parts.path == "/ws":
            self._websocket_held_open()
        elif parts.path == "/events":
            self._event_stream()
        elif parts.path == "/echo-headers":
            self._html(200, "".join(f"<p>{k}: {v}</p>" for k, v in self.headers.items()))
        else:
            super().do_GET()

    def do_POST(self) -> None:
        """Beacons and other posts: read and answered 204."""
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def _websocket_held_open(self) -> None:
        """``/ws``: accepts a WebSocket and keeps it open, silent, until the client goes."""
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC11B25").encode()
        ).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True
        with contextlib.suppress(OSError):
            while self.connection.recv(1024):
                pass

    def _event_stream(self) -> None:
        """``/events``: an EventSource stream that sends a comment every 200 ms, forever."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.close_connection = True
        with contextlib.suppress(OSError):
            while True:
                self.wfile.write(b": tick\n\n")
                self.wfile.flush()
                time.sleep(0.2)

    def _png(self, rgb: str, width: int, height: int) -> None:
        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (width, height), "#" + rgb).save(out, "PNG")
        data = out.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def _html(self, code: int, body: str) -> None:
        data = f"<!doctype html><html><body>{body}</body></html>".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)


class PageServer:
    """A threaded HTTP server for the test pages on 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.httpd = QuietHTTPServer((host, 0), PageHandler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.httpd.headers_seen = []  # type: ignore[attr-defined]
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def requests(self) -> list[str]:
        """Paths requested so far."""
        return self.httpd.requests  # type: ignore[attr-defined, no-any-return]

    @property
    def headers_seen(self) -> list[tuple[str, dict[str, str]]]:
        """(path, request headers) of every request so far."""
        return self.httpd.headers_seen  # type: ignore[attr-defined, no-any-return]

    def url(self, path: str = "/") -> str:
        """Absolute URL of ``path`` on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

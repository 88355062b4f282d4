"""The pages the capture benchmarks shoot: the Python 3.11 documentation (Debian's
``python3.11-doc``), served from several loopback addresses so that they are different sites.

127.0.0.2, 127.0.0.3, ... are all loopback on Linux; Chromium sees each as its own site
(its own renderer process), as it would see different customers' pages.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: Where Debian's python3.11-doc puts the HTML documentation.
DOCS_ROOT = Path("/usr/share/doc/python3.11/html")

#: How to get the pages when they are missing.
DOCS_HINT = (
    "the benchmark pages come from Debian's python3.11-doc package: run "
    "`scripts/install-system-deps.sh --bench` (as root) or `sudo apt-get install python3.11-doc`"
)


def pick_pages(count: int, root: Path = DOCS_ROOT) -> list[str]:
    """``count`` pages of the library reference, evenly spread over it (the same every run)."""
    candidates = sorted(str(path.relative_to(root)) for path in (root / "library").glob("*.html"))
    if len(candidates) < count:
        raise RuntimeError(f"found {len(candidates)} pages under {root}; {DOCS_HINT}")
    step = len(candidates) / count
    return [candidates[int(index * step)] for index in range(count)]


class _QuietHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like any real site

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Site:
    """One loopback host serving the documentation."""

    host: str
    port: int

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}/{path}"


@contextlib.contextmanager
def docs_sites(hosts: int, root: Path = DOCS_ROOT) -> Iterator[list[Site]]:
    """Serve ``root`` on 127.0.0.2 ... 127.0.0.(1 + hosts), one threaded server each."""
    if not (root / "index.html").is_file():
        raise RuntimeError(f"{root} has no documentation; {DOCS_HINT}")
    handler = functools.partial(_QuietHandler, directory=str(root))
    servers: list[ThreadingHTTPServer] = []
    try:
        for index in range(hosts):
            server = ThreadingHTTPServer((f"127.0.0.{2 + index}", 0), handler)
            server.daemon_threads = True
            servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        yield [Site(str(s.server_address[0]), int(s.server_address[1])) for s in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def spread(pages: list[str], sites: list[Site]) -> list[str]:
    """One URL per page, the pages dealt round-robin over ``sites``."""
    return [sites[index % len(sites)].url(page) for index, page in enumerate(pages)]

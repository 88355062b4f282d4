"""The base of the test suite's HTTP servers: a client hanging up is not an error.

Browsers abort requests all the time (a page navigates on, a capture ends, a context
closes); ``socketserver`` prints a traceback for each such reset or broken pipe, which
buried the real failures of a test run. Any other exception of a handler is still printed.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that says nothing when a client disconnects mid-request."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

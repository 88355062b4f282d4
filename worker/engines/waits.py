"""Waits that finish: ``load`` and ``networkidle`` bounded, the latter blind to long-lived
connections, and ``wait_for_function``.

Pages are navigated to DOMContentLoaded; the load event is then waited for up to
:data:`LOAD_CAP_MS` (a web font or image whose server never answers holds it back
forever, and Chromium's own font wait with it), after which loading is stopped and the
capture goes on with a note in ``result.notes``.

Playwright's ``networkidle`` (no request for 500 ms) never comes on pages with a chat
widget's WebSocket, an analytics beacon every few hundred ms or a long-polling request,
and the capture then fails on its timeout. Here the page loads to ``load``, then
:class:`NetworkIdle` waits for 500 ms without a request in flight, not counting
WebSockets, EventSource streams, beacons (``ping``) and requests open for longer than
:data:`LONG_LIVED_MS` (long polls, streams); after :data:`IDLE_CAP_MS` (or half the time
left) the capture goes on and says so in ``result.notes``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Request
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from shared.errors import PageScriptFailed
from worker.engines.browser import first_line
from worker.engines.capture_run import CaptureRun

#: Quiet time that counts as idle (Playwright's own definition).
IDLE_MS: Final = 500
#: Longest wait for idle before capturing anyway.
IDLE_CAP_MS: Final = 10_000
#: Requests open this long no longer count: long polls and streams.
LONG_LIVED_MS: Final = 2_000
#: Request types that never count: long-lived connections and fire-and-forget beacons.
IGNORED_TYPES: Final = frozenset({"websocket", "eventsource", "ping"})
#: Longest wait for the load event after DOMContentLoaded (a share of the time left).
LOAD_CAP_MS: Final = 20_000
LOAD_CAP_SHARE: Final = 0.6
#: ``wait_for_function`` polls this often.
POLL_MS: Final = 100


class NetworkIdle:
    """Follows a page's requests (attach before navigating) to tell when its network is idle."""

    def __init__(self, page: Page) -> None:
        self._started: dict[Request, float] = {}
        self._last_activity = 0.0
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_done)
        page.on("requestfailed", self._on_done)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _on_request(self, request: Request) -> None:
        if request.resource_type in IGNORED_TYPES:
            return
        self._started[request] = self._now()
        self._last_activity = self._now()

    def _on_done(self, request: Request) -> None:
        if self._started.pop(request, None) is not None:
            self._last_activity = self._now()

    def busy(self) -> int:
        """Requests in flight that count (not long-lived)."""
        now = self._now()
        return sum(1 for started in self._started.values()
                   if (now - started) * 1000 < LONG_LIVED_MS)

    async def wait(self, *, cap_ms: float) -> bool:
        """Wait until :data:`IDLE_MS` passed with nothing in flight; False when ``cap_ms``
        passed first."""
        deadline = self._now() + cap_ms / 1000
        while self._now() < deadline:
            if self.busy() == 0 and (self._now() - self._last_activity) * 1000 >= IDLE_MS:
                return True
            await asyncio.sleep(0.05)
        return False


async def wait_for_load(page: Page, run: CaptureRun) -> str | None:
    """Wait for the load event, bounded; returns a note when it did not come in time (a web
    font or an image whose server never answers holds it back) and the capture goes on."""
    cap = min(LOAD_CAP_MS, run.remaining_ms() * LOAD_CAP_SHARE)
    try:
        await page.wait_for_load_state("load", timeout=max(cap, 1))
    except PlaywrightTimeoutError:
        # Stop what is still loading (as the browser's stop button does): a font that
        # never arrives then fails, and the fonts Chromium waits for before a screenshot
        # are ready.
        with contextlib.suppress(PlaywrightError):
            await page.evaluate("() => window.stop()")
        return (f"load: the page had not finished loading after {round(cap)} ms"
                " (a resource never arrived); stopped loading and captured what it showed")
    return None


async def wait_for_network_idle(idle: NetworkIdle, run: CaptureRun) -> str | None:
    """The bounded ``networkidle`` wait; returns a note when it hit its cap."""
    cap = min(IDLE_CAP_MS, run.remaining_ms() / 2)
    if await idle.wait(cap_ms=cap):
        return None
    return (f"networkidle: {idle.busy()} request(s) still in flight after {round(cap)} ms; "
            "captured without waiting longer")


async def wait_for_function(page: Page, expression: str, run: CaptureRun) -> None:
    """Poll ``expression`` in the page until it is truthy, within the time left.

    Raises:
        PageScriptFailed: the expression does not parse or throws.
        playwright TimeoutError: it never became truthy (the capture's timeout error).
    """
    try:
        await page.wait_for_function(expression, polling=POLL_MS, timeout=run.remaining_ms())
    except PlaywrightTimeoutError:
        raise
    except PlaywrightError as exc:
        message = first_line(exc.message)
        if "Target" in message and "closed" in message:
            raise
        raise PageScriptFailed(f"wait_for_function failed in the page: {message}") from exc

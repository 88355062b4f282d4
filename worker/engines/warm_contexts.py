"""Browser contexts opened ahead of demand, so that opening one overlaps the previous
capture instead of adding to the next.

Opening a context and its first page (a renderer process, its egress gate) is a good part
of a capture's wall time (measured in ``bench/README.md``). :class:`WarmContexts` keeps a
few of them ready, each with an egress gate of its own, and hands each to exactly one
capture, which closes it afterwards: nothing is ever reused from one job to the next, so
isolation between jobs is the same as with a context opened on demand. The capture still
attaches everything that is per job itself (request id, navigation guard, request
blocking, cookies, timeouts).

A context's emulation is fixed when it is opened (viewport, scale, user agent, locale,
time zone...), so a warm context only serves a capture asking for the very same
:func:`~worker.engines.page_setup.context_options`. The pool warms the options of the last
capture it saw (first the defaults): a server's traffic is mostly alike. Options carrying
credentials or headers are never warmed, so no secret waits in an idle context.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Final

import structlog
from playwright.async_api import BrowserContext, Page, ProxySettings
from playwright.async_api import Error as PlaywrightError

from shared.jobs import CaptureOptions
from shared.url_policy import AsyncResolver, UrlPolicy
from worker.engines.browser import CLOSE_TIMEOUT_S, NO_PROXY_BYPASS, SharedBrowser
from worker.engines.egress import EgressGate
from worker.engines.page_setup import context_options

log = structlog.get_logger("shotline.engines.warm_contexts")

#: The URL of the options warmed before any capture was seen (defaults everywhere else).
DEFAULT_WARM_URL: Final = "http://warm.invalid/"

#: How long a warm page may take to answer before it counts as gone with its browser.
PROBE_TIMEOUT_S: Final = 2.0

#: Most contexts kept warm, whatever the number of captures in flight.
MAX_WARM: Final = 8

#: ``context_options`` keys that carry secrets: contexts with them are never warmed.
SECRET_OPTIONS: Final = frozenset({"http_credentials", "extra_http_headers"})


def signature(kwargs: dict[str, Any]) -> str:
    """A key equal for exactly the captures that can share one kind of context."""
    return json.dumps(kwargs, sort_keys=True, default=str)


@dataclass(slots=True)
class WarmContext:
    """A context opened ahead of demand: its own egress gate, the context and a blank page."""

    gate: EgressGate
    context: BrowserContext
    page: Page
    signature: str


class WarmContexts:
    """Keeps ``size`` contexts ready in ``browser`` (0: none), each behind its own egress
    gate checking ``policy`` (hosts resolved with ``resolver``); more while more captures
    run at once (one per capture in flight, up to :data:`MAX_WARM`), so that several
    captures on one event loop each find one.

    Refilling runs in the background on the engine's event loop; it never launches a
    browser (a recycled or crashed browser is relaunched by the next capture), and a warm
    context whose browser is gone is dropped when taken.
    """

    def __init__(
        self,
        browser: SharedBrowser,
        *,
        policy: UrlPolicy,
        resolver: AsyncResolver | None,
        size: int,
    ) -> None:
        self._browser = browser
        self._policy = policy
        self._resolver = resolver
        self._size = size
        self._kwargs = context_options(CaptureOptions(url=DEFAULT_WARM_URL))
        self._signature = signature(self._kwargs)
        self._ready: list[WarmContext] = []
        self._refilling: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Captures that got a warm context, and those that had to open their own.
        self.hits = 0
        self.misses = 0

    @property
    def ready(self) -> int:
        """Warm contexts waiting for a capture."""
        return len(self._ready)

    @property
    def contexts(self) -> tuple[WarmContext, ...]:
        """The warm contexts waiting for a capture, oldest first."""
        return tuple(self._ready)

    async def take(self, options: CaptureOptions) -> WarmContext | None:
        """A warm context for ``options`` (the caller owns it from now on), or None when
        there is none for these options: the caller opens its own. Starts a refill.

        A browser that died while the event loop was idle (between two tasks of a worker)
        still looks connected until its ``disconnected`` event is processed: one round
        trip to the warm page proves it alive, else the caller's own opening relaunches it.
        """
        kwargs = context_options(options)
        wanted = signature(kwargs)
        found: WarmContext | None = None
        while self._ready:
            candidate = self._ready.pop(0)
            try:
                answers = candidate.signature == wanted and await self._answers(candidate)
            except BaseException:  # cancelled while probing: the context is nobody's
                self._discard(candidate)
                raise
            if answers:
                found = candidate
                break
            self._discard(candidate)  # gone with its browser, or warmed for other options
        if found is not None:
            self._browser.claim(found.context)
            self.hits += 1
        else:
            self.misses += 1
            if not SECRET_OPTIONS & kwargs.keys():
                self._kwargs, self._signature = kwargs, wanted
        self.refill()
        return found

    def refill(self) -> None:
        """Open contexts in the background until ``size`` are ready (no-op when running)."""
        if self._closed or self._size <= 0:
            return
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.ensure_future(self._refill())

    async def refilled(self) -> None:
        """Wait until the background refill in progress, if any, has ended."""
        if self._refilling is not None:
            await asyncio.wait({self._refilling})

    @property
    def target(self) -> int:
        """How many contexts to keep ready now: ``size``, or one per capture in flight."""
        if self._size <= 0:
            return 0
        return min(max(self._size, self._browser.open_contexts), MAX_WARM)

    async def _refill(self) -> None:
        while not self._closed and len(self._ready) < self.target:
            if self._browser.current is None:
                return  # no browser to warm in: the next capture launches one
            try:
                warm = await self._open(self._kwargs, self._signature)
            except (PlaywrightError, OSError) as exc:
                log.debug("Could not open a warm browser context.", error=str(exc))
                return
            if self._closed or not self._alive(warm):
                self._discard(warm)
                return
            self._ready.append(warm)

    async def _open(self, kwargs: dict[str, Any], key: str) -> WarmContext:
        gate = EgressGate(self._policy, resolver=self._resolver)
        await gate.start()
        context: BrowserContext | None = None
        try:
            proxy: ProxySettings = {"server": gate.proxy_server, "bypass": NO_PROXY_BYPASS}
            context = await self._browser.new_context(
                lambda browser: browser.new_context(**kwargs, proxy=proxy), spare=True
            )
            page = await context.new_page()
        except BaseException:
            # Cancelled (aclose) or failed half-way: nothing may stay open.
            if context is not None:
                self._in_background(_close(context, gate, self._browser))
            else:
                await gate.aclose()
            raise
        return WarmContext(gate, context, page, key)

    async def _answers(self, warm: WarmContext) -> bool:
        if not self._alive(warm):
            return False
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await warm.page.evaluate("1")
        except (PlaywrightError, TimeoutError):
            return False
        return True

    def _alive(self, warm: WarmContext) -> bool:
        current = self._browser.current
        return (
            current is not None
            and warm.context.browser is current
            and not warm.page.is_closed()
        )

    def _discard(self, warm: WarmContext) -> None:
        self._in_background(_close(warm.context, warm.gate, self._browser))

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        """Stop refilling and close every warm context and its gate. Idempotent."""
        self._closed = True
        refilling, self._refilling = self._refilling, None
        if refilling is not None and not refilling.done():
            refilling.cancel()
            await asyncio.wait({refilling})
        while self._ready:
            self._discard(self._ready.pop())
        if self._background:
            await asyncio.wait(set(self._background), timeout=CLOSE_TIMEOUT_S)


async def _close(context: BrowserContext, gate: EgressGate, browser: SharedBrowser) -> None:
    """Close a context nobody will use, then its gate (fail closed: the gate goes last)."""
    try:
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await context.close()
    finally:
        browser.forget_spare(context)
        await gate.aclose()

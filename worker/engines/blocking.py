"""Request blocking for the ``chromium`` engine: ``block_ads``, ``block_trackers``,
``block_chats`` and ``block_resources``, by intercepting every request of a browser context.

What is refused is data, not code: the filter lists of :mod:`worker.engines.filter_lists`
(EasyList, EasyPrivacy, chat widgets), matched by adblock-rust on the request's URL, its
type and the page it serves. The captured page's own site (its host and subdomains) is
never refused, whatever a list says: a list's first-party rules (``/ads/banner.js``) would
otherwise cut pieces out of the very page asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

import structlog
from playwright.async_api import BrowserContext, Request, Route, WebSocketRoute
from playwright.async_api import Error as PlaywrightError

from shared.jobs import CaptureOptions
from shared.options import ResourceType
from worker.engines.filter_lists import DATA_DIR, FilterList, lists_for

__all__ = ["ABORT_REASON", "DATA_DIR", "RequestBlocker", "same_site"]

log = structlog.get_logger("shotline.engines.blocking")

#: Chromium's error for requests refused by the client (shown in the page's console).
ABORT_REASON: Final = "blockedbyclient"


def same_site(host: str, page_host: str) -> bool:
    """Whether ``host`` is the page's host or one of its subdomains (first party)."""
    host, page_host = host.lower(), page_host.lower()
    return host == page_host or host.endswith("." + page_host)


class RequestBlocker:
    """Refuses a capture's unwanted requests and counts them.

    :meth:`install` adds the context's routes only when an option asks for blocking, so
    captures without blocking keep the browser's normal network path (and cache). Other
    routes registered on the context (e.g. an egress policy) still see every request that
    is not refused: this handler passes them on with ``route.fallback()``.
    """

    def __init__(
        self, options: CaptureOptions, lists: Sequence[FilterList] | None = None
    ) -> None:
        self.page_host = urlsplit(options.url).hostname or ""
        self.resource_types = frozenset(kind.value for kind in options.block_resources)
        self.block_websockets = ResourceType.websocket.value in self.resource_types
        self.lists = tuple(lists_for(options) if lists is None else lists)
        self.blocked = 0

    @property
    def active(self) -> bool:
        """Whether this capture blocks anything at all."""
        return bool(self.lists or self.resource_types)

    async def install(self, context: BrowserContext) -> None:
        """Route the context's requests through :meth:`should_block` (when active)."""
        if not self.active:
            return
        await context.route("**/*", self._handle)
        if self.block_websockets:
            await context.route_web_socket("**/*", self._refuse_websocket)

    def should_block(self, url: str, resource_type: str, *, main_document: bool) -> bool:
        """Whether a request for ``url`` of ``resource_type`` is refused (never the page's
        own document, wherever redirects take it; frames of ad hosts are refused)."""
        if main_document:
            return False
        if resource_type in self.resource_types:
            return True
        if not self.lists:
            return False
        host = urlsplit(url).hostname
        if not host or same_site(host, self.page_host):
            return False
        return any(
            listed.blocks(url, host=host, page_host=self.page_host, resource_type=resource_type)
            for listed in self.lists
        )

    async def _handle(self, route: Route, request: Request) -> None:
        if self.should_block(
            request.url, request.resource_type, main_document=_is_main_document(request)
        ):
            self.blocked += 1
            await route.abort(ABORT_REASON)
        else:
            await route.fallback()

    async def _refuse_websocket(self, websocket: WebSocketRoute) -> None:
        self.blocked += 1
        await websocket.close(code=1008, reason="blocked by block_resources")


def _is_main_document(request: Request) -> bool:
    if not request.is_navigation_request():
        return False
    try:
        return request.frame.parent_frame is None
    except PlaywrightError:  # no frame (a worker's request): not the page
        return False

"""Request blocking for the ``chromium`` engine: ``block_ads``, ``block_trackers`` and
``block_resources``, by intercepting every request of a browser context.

The ad and tracker hosts are data, not code: ``data/blocklist.json`` is built from a
maintained tracker database by ``shotline blocklist update`` (see
:mod:`shotline.blocklists`). A request is refused when its host or any parent domain is
listed, unless it belongs to the captured page's own site.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import structlog
from playwright.async_api import BrowserContext, Request, Route, WebSocketRoute
from playwright.async_api import Error as PlaywrightError

from shared.errors import ConfigurationError
from shared.inputs import page_url
from shared.jobs import CaptureOptions
from shared.options import ResourceType

log = structlog.get_logger("shotline.engines.blocking")

#: Where the engines' data files live.
DATA_DIR: Final = Path(__file__).parent / "data"
#: The ad and tracker host list (``{"source": {...}, "categories": {"ads": [...], ...}}``).
BLOCKLIST_FILE: Final = DATA_DIR / "blocklist.json"
#: Categories of :data:`BLOCKLIST_FILE` and the option that blocks each.
CATEGORY_OPTIONS: Final = {"ads": "block_ads", "trackers": "block_trackers"}

#: Chromium's error for requests refused by the client (shown in the page's console).
ABORT_REASON: Final = "blockedbyclient"


@dataclass(frozen=True, slots=True)
class Blocklist:
    """Host names by category; a host matches when it or a parent domain is listed."""

    categories: dict[str, frozenset[str]]
    source: dict[str, str] = field(default_factory=dict)

    def hosts(self, category: str) -> frozenset[str]:
        """The hosts of ``category`` (empty when the list has no such category)."""
        return self.categories.get(category, frozenset())

    @staticmethod
    def from_json(data: dict[str, object]) -> Blocklist:
        """A blocklist from the JSON document ``shotline blocklist update`` writes."""
        categories = data.get("categories")
        if not isinstance(categories, dict):
            raise ConfigurationError("the blocklist has no 'categories' object")
        source = data.get("source")
        return Blocklist(
            categories={
                str(name): frozenset(str(host).lower() for host in hosts)
                for name, hosts in categories.items()
            },
            source=dict(source) if isinstance(source, dict) else {},
        )


@functools.cache
def load_blocklist(path: Path = BLOCKLIST_FILE) -> Blocklist:
    """The blocklist shipped with Shotline (read once per process)."""
    try:
        return Blocklist.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the blocklist {path}: {exc}; run `shotline blocklist update`"
        ) from exc


def parent_domains(host: str) -> Iterable[str]:
    """``a.b.example.com`` → ``a.b.example.com``, ``b.example.com``, ``example.com``, ``com``."""
    labels = host.lower().rstrip(".").split(".")
    for start in range(len(labels)):
        yield ".".join(labels[start:])


def is_listed(host: str, hosts: frozenset[str]) -> bool:
    """Whether ``host`` or one of its parent domains is in ``hosts``."""
    return any(candidate in hosts for candidate in parent_domains(host))


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

    def __init__(self, options: CaptureOptions, blocklist: Blocklist | None = None) -> None:
        self.page_host = urlsplit(page_url(options) or "").hostname or ""
        self.resource_types = frozenset(kind.value for kind in options.block_resources)
        self.block_websockets = ResourceType.websocket.value in self.resource_types
        hosts: set[str] = set()
        for category, option in CATEGORY_OPTIONS.items():
            if getattr(options, option):
                hosts |= (blocklist or load_blocklist()).hosts(category)
        self.hosts = frozenset(hosts)
        self.blocked = 0

    @property
    def active(self) -> bool:
        """Whether this capture blocks anything at all."""
        return bool(self.hosts or self.resource_types)

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
        if not self.hosts:
            return False
        host = urlsplit(url).hostname
        if not host or same_site(host, self.page_host):
            return False
        return is_listed(host, self.hosts)

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

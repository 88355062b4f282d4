"""Watches where a capture's page goes: a refused top-level navigation ends the capture.

The :class:`~worker.engines.egress.EgressGate` stops every connection the policy refuses;
for sub-requests (images, frames, ``fetch``...) that is the end of it, they are counted.
When the *page itself* goes somewhere refused (the submitted URL, a redirect, a
``location`` change by its script) the capture must fail with ``url_blocked`` instead of
showing Chromium's error page: :class:`NavigationGuard` notices that from the page's
failed main-frame requests and the gate's refusals. It also refuses main-frame documents
of any scheme but web pages and blank, blob or error documents (``file:``, ``chrome:``,
``data:``...), which Chromium already refuses to web content.
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Page, Request

from worker.engines.egress import EgressGate

#: Schemes the main frame may show: web pages, blank and ``srcdoc`` documents, same-origin
#: blobs, and Chromium's error page (what a failed navigation shows; the failure itself is
#: judged from its request).
MAIN_FRAME_SCHEMES: Final = frozenset({"http", "https", "about", "blob", "chrome-error"})

#: How much of a URL goes into an error message.
MAX_URL_SHOWN: Final = 200


class NavigationGuard:
    """Follows ``page``'s main-frame navigations; :attr:`blocked` resolves to the reason
    when one was refused (by ``gate`` or for its scheme)."""

    def __init__(self, page: Page, gate: EgressGate) -> None:
        self.blocked: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.last_navigation: str | None = None
        self._page = page
        self._gate = gate
        page.on("request", self._on_request)
        page.on("requestfailed", self._on_request_failed)
        page.on("framenavigated", self._on_frame_navigated)

    def refusal(self, url: str) -> str | None:
        """Why the last main-frame navigation (``url`` when none was seen) was refused, if
        it was: what :attr:`blocked` resolves to, or the gate's reason for its address."""
        if self.blocked.done():
            return self.blocked.result()
        target = self.last_navigation or url
        reason = self._gate.refusal_for(target)
        return None if reason is None else f"navigation to {_shown(target)} was blocked: {reason}"

    def network_error(self) -> str | None:
        """What really failed in the last main-frame navigation, when the gate knows
        (Chromium reports every failure behind the proxy as a SOCKS failure)."""
        if self.last_navigation is None:
            return None
        return self._gate.failure_for(self.last_navigation)

    def _is_main_frame_navigation(self, request: Request) -> bool:
        try:
            return request.is_navigation_request() and request.frame == self._page.main_frame
        except PlaywrightError:  # requests of workers have no frame
            return False

    def _on_request(self, request: Request) -> None:
        if self._is_main_frame_navigation(request):
            self.last_navigation = request.url

    def _on_request_failed(self, request: Request) -> None:
        if not self._is_main_frame_navigation(request):
            return
        reason = self._gate.refusal_for(request.url)
        if reason is not None:
            self._block(f"navigation to {_shown(request.url)} was blocked: {reason}")

    def _on_frame_navigated(self, frame: Frame) -> None:
        if frame.parent_frame is not None:
            return
        scheme = urlsplit(frame.url).scheme.lower()
        if scheme not in MAIN_FRAME_SCHEMES:
            self._block(
                f"navigation to {_shown(frame.url)} was blocked: {scheme}: documents are not "
                "allowed; only http and https"
            )

    def _block(self, reason: str) -> None:
        if not self.blocked.done():
            self.blocked.set_result(reason)


def _shown(url: str) -> str:
    return url if len(url) <= MAX_URL_SHOWN else url[:MAX_URL_SHOWN] + "..."

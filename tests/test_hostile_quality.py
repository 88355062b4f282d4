"""Hostile and odd pages that must end cleanly, on real Chromium: a page that navigates
itself after load, one that prints itself, one that opens hundreds of windows. Each ends
with the stated outcome and the engine still healthy (its next capture works)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.procs import wait_for
from tests.quality_shooter import Shooter, count, picture, shooter_on
from tests.servers import PageServer

RED, GREEN = (255, 0, 0), (0, 255, 0)


@pytest.fixture(scope="module")
def shooter(page_server: PageServer) -> Iterator[Shooter]:
    yield from shooter_on(page_server)


def healthy(shooter: Shooter) -> None:
    """The engine's next capture of a plain page works, with no context left open."""
    assert shooter.capture("/index.html").title == "Shotline test page"
    assert shooter.engine.open_contexts == 0


def test_a_page_that_navigates_itself_after_load_is_captured_where_it_ends(
    shooter: Shooter,
) -> None:
    # full_page scrolls through the page, so the redirect comes while a script of ours runs.
    capture = shooter.capture("/quality/self-redirect.html", full_page=True, delay_ms=600)
    assert capture.final_url == shooter.pages.url("/index.html?arrived=1")
    assert capture.title == "Shotline test page"
    assert count(picture(capture), RED) == 300 * 200  # index.html's box, not the red page it left
    healthy(shooter)


def test_a_page_calling_window_print_still_makes_a_pdf(shooter: Shooter) -> None:
    pdf = shooter.capture("/quality/prints.html", format="pdf")
    assert pdf.data.startswith(b"%PDF") and b"Invoice" not in pdf.data[:10]
    screenshot = shooter.capture("/quality/prints.html")
    assert screenshot.blank is False
    healthy(shooter)


def test_popups_are_refused_at_once_and_counted(shooter: Shooter) -> None:
    started = time.monotonic()
    capture = shooter.capture("/quality/popups.html", width=300, height=200)
    assert time.monotonic() - started < 15
    assert capture.popups_blocked == 301  # 300 window.open calls and one target=_blank link
    assert count(picture(capture), GREEN) > 300 * 150
    opened = [path for path in shooter.pages.requests if "popup=" in path]
    assert opened == []  # none of the 300 windows loaded anything
    healthy(shooter)


def test_full_page_is_viewport_wide_and_reports_what_a_cap_cut(shooter: Shooter) -> None:
    capture = shooter.capture("/quality/wide-tall.html", full_page=True, timeout_ms=60000)
    shot = picture(capture)
    assert shot.size == (1280, 20000)  # the 7000 px menu no longer widens the picture
    assert capture.truncated == {"page_width": 7000, "page_height": 30000,
                                 "width": 1280, "height": 20000}
    wide = shooter.capture("/quality/wide-tall.html", full_page=True, full_width=True,
                           timeout_ms=60000)
    assert picture(wide).size == (3840, 8333)  # MAX_FULL_PAGE_WIDTH, then the pixel cap
    assert wide.truncated == {"page_width": 7000, "page_height": 30000,
                              "width": 3840, "height": 8333}
    whole = shooter.capture("/index.html", full_page=True)
    assert whole.truncated is None
    healthy(shooter)


#: Playwright's handles (its client-side objects), by class name: each capture's context
#: and everything in it must be let go of when the capture ends.
PLAYWRIGHT_HANDLES = frozenset({"BrowserContext", "Page", "Frame", "Request", "Response",
                                "Route", "WebSocket", "Worker", "ElementHandle", "JSHandle"})

#: Hostile pages captured in a row (the worker's memory rose over thirty of them).
IN_A_ROW: tuple[tuple[str, dict[str, Any]], ...] = (
    ("/quality/self-redirect.html", {"full_page": True, "delay_ms": 600}),
    ("/quality/prints.html", {"format": "pdf"}),
    ("/quality/popups.html", {"width": 300, "height": 200}),
    ("/quality/surrogate.html", {}),
    ("/quality/wide-tall.html", {"full_page": True, "timeout_ms": 60000}),
    ("/quality/busy-network.html", {"wait_until": "networkidle"}),
    ("/quality/polling.html", {}),
    ("/quality/chats.html", {"block_chats": True}),
    ("/quality/ads.html", {"block_ads": True, "block_trackers": True}),
)


def playwright_handles() -> dict[str, int]:
    """How many of :data:`PLAYWRIGHT_HANDLES` are alive in this process, by class."""
    gc.collect()
    found: dict[str, int] = {}
    for thing in gc.get_objects():
        kind = type(thing)
        if kind.__name__ in PLAYWRIGHT_HANDLES and kind.__module__.startswith("playwright."):
            found[kind.__name__] = found.get(kind.__name__, 0) + 1
    return found


def test_hostile_pages_in_a_row_leave_nothing_behind(shooter: Shooter) -> None:
    """What bounds a worker's memory over many hostile pages: every capture gives back its
    context, pages and Playwright handles (none kept in Python, none left in the browser),
    so the engine's state after them is what it was after one plain capture."""
    healthy(shooter)
    baseline = playwright_handles()
    spares = shooter.engine.warm.ready
    for path, fields in IN_A_ROW:
        shooter.capture(path, **fields)
        assert shooter.engine.open_contexts == 0, path
    healthy(shooter)
    # Contexts closing in the background (past the capture's grace) are let go of soon.
    assert wait_for(lambda: playwright_handles() == baseline, timeout=15), (
        playwright_handles(), baseline)
    # No context in the browser but the warm spare(s): open_contexts counts all the others.
    assert shooter.engine.open_contexts == 0 and shooter.engine.warm.ready <= spares

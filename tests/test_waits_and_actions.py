"""Waits that finish and the page actions before capture, on real Chromium (pixels or
content checked): bounded ``networkidle`` beside a never-closing WebSocket, an EventSource
and beacons every 200 ms; ``wait_for_function``; ``remove_selectors``, ``scroll_to``,
``hover``; ``fail_if_content_contains`` / ``fail_if_content_missing``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import cast

import pytest

from shared.errors import ContentCheckFailed, PageScriptFailed, SelectorNotFound
from tests.quality_shooter import Shooter, count, picture, shooter_on
from tests.servers import PageServer
from worker.engines.page_actions import content_problem
from worker.engines.waits import IDLE_CAP_MS

GREEN, BLUE, RED, MAGENTA = (0, 255, 0), (0, 0, 255), (255, 0, 0), (255, 0, 255)


@pytest.fixture(scope="module")
def shooter(page_server: PageServer) -> Iterator[Shooter]:
    yield from shooter_on(page_server)


def test_networkidle_ignores_websockets_event_streams_and_beacons(shooter: Shooter) -> None:
    started = time.monotonic()
    capture = shooter.capture("/quality/busy-network.html", wait_until="networkidle",
                              width=600, height=400)
    seconds = time.monotonic() - started
    assert seconds < IDLE_CAP_MS / 1000  # idle came, inside the cap
    assert capture.notes == []
    shot = picture(capture)
    assert count(shot, GREEN) == 400 * 300  # the page's own late request was waited for
    beacons = [path for path in shooter.pages.requests if path == "/beacon"]
    assert len(beacons) >= 2  # the beacons did go on meanwhile


def test_networkidle_hits_its_cap_and_captures_anyway(shooter: Shooter) -> None:
    started = time.monotonic()
    capture = shooter.capture("/quality/polling.html", wait_until="networkidle",
                              timeout_ms=8000, width=300, height=200)
    assert time.monotonic() - started < 8
    assert capture.notes and capture.notes[0].startswith("networkidle:")
    assert count(picture(capture), BLUE) == 300 * 200


def test_wait_for_function_waits_until_truthy(shooter: Shooter) -> None:
    assert shooter.capture("/quality/waits.html").title == "waits"
    ready = shooter.capture("/quality/waits.html", wait_for_function="window.appReady === true")
    assert ready.title == "ready"
    with pytest.raises(PageScriptFailed, match="wait_for_function"):
        shooter.capture("/quality/waits.html", wait_for_function="this is not javascript(")
    with pytest.raises(Exception, match=r"timeout_ms|did not finish") as caught:
        shooter.capture("/quality/waits.html", wait_for_function="window.never", timeout_ms=2000)
    assert getattr(caught.value, "code", None) == "timeout"


def test_remove_selectors_takes_elements_out_of_the_layout(shooter: Shooter) -> None:
    plain = picture(shooter.capture("/quality/waits.html", width=500, height=400))
    assert count(plain, MAGENTA) == 400 * 100
    removed = picture(shooter.capture("/quality/waits.html", width=500, height=400,
                                      remove_selectors=[".promo"]))
    assert count(removed, MAGENTA) == 0
    with pytest.raises(SelectorNotFound, match="not a valid selector"):
        shooter.capture("/quality/waits.html", remove_selectors=["div[["])


def test_scroll_to_brings_the_element_into_the_picture(shooter: Shooter) -> None:
    top = picture(shooter.capture("/quality/waits.html", width=500, height=400))
    assert count(top, GREEN) == 0
    scrolled = picture(shooter.capture("/quality/waits.html", width=500, height=400,
                                       scroll_to="#far"))
    assert count(scrolled, GREEN) == 300 * 200
    assert scrolled.getpixel((10, 10)) == GREEN  # at the top of the viewport
    with pytest.raises(SelectorNotFound, match="scroll_to"):
        shooter.capture("/quality/waits.html", scroll_to="#nowhere")


def test_hover_opens_a_hover_menu(shooter: Shooter) -> None:
    closed = picture(shooter.capture("/quality/waits.html", width=500, height=400))
    assert count(closed, RED) == 0
    opened = picture(shooter.capture("/quality/waits.html", width=500, height=400,
                                     hover="#menu"))
    assert count(opened, RED) == 200 * 150
    with pytest.raises(SelectorNotFound, match="hover"):
        shooter.capture("/quality/waits.html", hover="#nowhere", timeout_ms=5000)


def test_content_checks_fail_the_capture(shooter: Shooter) -> None:
    ok = shooter.capture("/quality/waits.html", fail_if_content_contains=["Access denied"],
                         fail_if_content_missing=["price: 42"])
    assert ok.data
    with pytest.raises(ContentCheckFailed, match=r"'subscribe'.*fail_if_content_contains"):
        shooter.capture("/quality/waits.html", fail_if_content_contains=["subscribe"])
    with pytest.raises(ContentCheckFailed, match="fail_if_content_missing") as caught:
        shooter.capture("/quality/waits.html", fail_if_content_missing=["Price: 43 EUR"])
    assert caught.value.code == "content_check_failed" and not caught.value.retryable


def test_content_problem_is_case_insensitive() -> None:
    assert content_problem("Hello WORLD", contains=["world"], missing=[]) is not None
    assert content_problem("Hello", contains=[], missing=["HELLO"]) is None
    assert "missing" in (content_problem("Hello", contains=[], missing=["bye"]) or "")


def test_a_font_that_never_arrives_does_not_hang_the_capture(shooter: Shooter) -> None:
    for fmt in ("png", "jpeg"):
        capture = shooter.capture("/quality/font-hang.html", format=fmt, timeout_ms=12000,
                                  width=600, height=200)
        assert capture.notes and capture.notes[0].startswith("load:")
        shot = picture(capture)  # jpeg: near the colours only
        pixels = [cast("tuple[int, int, int]", shot.getpixel((x, y)))
                  for x in range(0, 600, 2) for y in range(0, 200, 2)]
        assert sum(1 for r, g, b in pixels if b > 200 and r < 60 and g < 60) > 300 * 100 // 2
        assert sum(1 for r, g, b in pixels if r > 200 and g > 200 and b < 80) > 100  # the text

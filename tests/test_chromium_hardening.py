"""Chromium hardening and resource limits: what a hostile page cannot get from the browser.

Permission prompts are denied, memory is capped per renderer (JavaScript heap and
everything else), full-page captures of endless pages are bounded, each engine runs a
fresh profile with no extensions and the sandbox whenever it is not root: over any limit
the capture fails (or the page's allocation does), never the worker.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import FloatRect

from shared.constants import MAX_CAPTURE_PIXELS, MAX_FULL_PAGE_HEIGHT, MAX_FULL_PAGE_WIDTH
from shared.errors import EngineError
from shared.url_policy import UrlPolicy
from tests.canary import Canary
from tests.engine_loop import EngineOnLoop
from tests.hostile_pages import HostilePages
from worker.engines.browser import chromium_args, memory_capped_launcher
from worker.engines.chromium import ChromiumEngine, bounded_clip, full_page_clip

POLICY = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))


class Limited(EngineOnLoop):
    """An engine with small memory caps, on its own event loop."""


@pytest.fixture(scope="module")
def pages() -> Iterator[HostilePages]:
    with Canary() as canary, HostilePages(canary.address) as server:
        yield server


@pytest.fixture(scope="module")
def limited() -> Iterator[Limited]:
    engine = ChromiumEngine(
        policy=POLICY, max_result_bytes=50_000_000, js_heap_mb=64, memory_mb=512
    )
    with asyncio.Runner() as runner:
        runner.run(engine.start())
        try:
            yield Limited(engine, runner)
        finally:
            runner.run(engine.aclose())


def browser_command_lines() -> list[list[str]]:
    """Command lines of the running Chromium browser processes (not their children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if Path(args[0]).name in ("chromium", "chrome") and not any(
            arg.startswith("--type=") for arg in args
        ):
            found.append(args)
    return found


def own_browser(proxy_port: int) -> list[str]:
    """The command line of the browser launched with the outside gate on ``proxy_port``."""
    [args] = [
        args for args in browser_command_lines()
        if f"--proxy-server=socks5://127.0.0.1:{proxy_port}" in args
    ]
    return args


def test_permission_prompts_are_denied(limited: Limited, pages: HostilePages) -> None:
    capture = limited.capture(pages.url("/permissions"), wait_for_selector="#done")
    notifications, geolocation, camera, clipboard = (capture.title or "").split(" ")
    assert notifications == "denied(denied)"
    assert geolocation == "denied(1)"  # GeolocationPositionError.PERMISSION_DENIED
    assert camera in ("denied(NotAllowedError)", "denied(NotFoundError)")  # no device here
    assert clipboard == "denied(NotAllowedError)"


def test_a_javascript_heap_hog_crashes_only_its_renderer(
    limited: Limited, pages: HostilePages
) -> None:
    with pytest.raises(EngineError, match="renderer crashed"):
        limited.capture(pages.url("/heap-hog"), delay_ms=15000, timeout_ms=30000)
    assert limited.capture(pages.url("/allowed")).http_status == 200


def test_memory_outside_the_javascript_heap_is_capped_too(
    limited: Limited, pages: HostilePages
) -> None:
    # ArrayBuffers are not in the JavaScript heap: the process limit stops them.
    capture = limited.capture(pages.url("/buffer-hog"))
    assert capture.title is not None
    assert capture.title.startswith("refused after"), capture.title
    assert int(capture.title.split()[2]) < 512


def test_endless_pages_give_bounded_full_page_captures(
    limited: Limited, pages: HostilePages
) -> None:
    capture = limited.capture(pages.url("/endless"), full_page=True, width=400, height=300)
    with Image.open(io.BytesIO(capture.data)) as picture:
        assert picture.size == (400, MAX_FULL_PAGE_HEIGHT)


@pytest.mark.parametrize(
    ("size", "max_height", "scale", "clip"),
    [
        ((1280, 3000), None, 1, None),
        ((1280, 3000), 1000, 1, (1280, 1000)),
        ((1280, 10**6), None, 1, (1280, MAX_FULL_PAGE_HEIGHT)),
        ((10**6, 800), None, 1, (MAX_FULL_PAGE_WIDTH, 800)),
        ((10**6, 10**6), None, 1, (MAX_FULL_PAGE_WIDTH, MAX_CAPTURE_PIXELS // MAX_FULL_PAGE_WIDTH)),
        ((1280, 20000), None, 3, (1280, int(MAX_CAPTURE_PIXELS / (1280 * 9)))),
    ],
)
def test_full_page_clip_bounds_width_height_and_pixels(
    size: tuple[int, int], max_height: int | None, scale: float, clip: tuple[int, int] | None
) -> None:
    kept = full_page_clip(*size, max_height=max_height, scale=scale)
    if clip is None:
        assert kept is None
    else:
        assert kept is not None
        assert (kept["width"], kept["height"]) == clip
        assert kept["width"] * kept["height"] * scale * scale <= MAX_CAPTURE_PIXELS


def test_explicit_clips_beyond_the_viewport_are_bounded_too() -> None:
    kept = bounded_clip({"x": 10.0, "y": 20.0, "width": 20000.0, "height": 20000.0},
                        max_height=None, scale=3)
    assert (kept["x"], kept["y"], kept["width"]) == (10, 20, MAX_FULL_PAGE_WIDTH)
    assert kept["width"] * kept["height"] * 9 <= MAX_CAPTURE_PIXELS
    small: FloatRect = {"x": 0.0, "y": 0.0, "width": 300.0, "height": 200.0}
    assert bounded_clip(small, max_height=None, scale=2) == small


def test_each_engine_has_a_fresh_profile_without_extensions(limited: Limited) -> None:
    first = own_browser(limited.engine._browser._outside_gate.port)
    other = ChromiumEngine(policy=POLICY, max_result_bytes=1_000_000)
    limited.runner.run(other.start())
    try:
        second = own_browser(other._browser._outside_gate.port)
    finally:
        limited.runner.run(other.aclose())
    profiles = [
        next(arg.split("=", 1)[1] for arg in args if arg.startswith("--user-data-dir="))
        for args in (first, second)
    ]
    assert profiles[0] != profiles[1]
    assert all(Path(profile).name.startswith("playwright_chromiumdev_profile-")
               for profile in profiles)
    assert not Path(profiles[1]).exists()  # removed with its browser
    for args in (first, second):
        assert "--disable-extensions" in args
        assert not any(arg.startswith("--load-extension=") and arg != "--load-extension="
                       for arg in args)
        assert "--deny-permission-prompts" in args
        assert "--webrtc-ip-handling-policy=disable_non_proxied_udp" in args


def test_the_sandbox_stays_on_unless_root(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "--no-sandbox" not in chromium_args(no_sandbox=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert ChromiumEngine(policy=POLICY, max_result_bytes=1)._browser._no_sandbox is False
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert ChromiumEngine(policy=POLICY, max_result_bytes=1)._browser._no_sandbox is True
    # An operator can force it either way.
    assert ChromiumEngine(
        policy=POLICY, max_result_bytes=1, no_sandbox=False
    )._browser._no_sandbox is False


def test_the_memory_capped_launcher(tmp_path: Path) -> None:
    launcher = memory_capped_launcher("/opt/my chromium/chrome", 512, tmp_path)
    assert launcher.read_text() == (
        "#!/bin/sh\nulimit -d 524288 || exit 1\nexec '/opt/my chromium/chrome' \"$@\"\n"
    )
    assert os.access(launcher, os.X_OK)

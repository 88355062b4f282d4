"""The ``chromium`` engine against real Chromium and the local test pages.

One engine (one browser) serves the whole module, on one event loop. Its processes are
told apart from everybody else's Chromium by a marker variable in their environment,
which the Playwright driver and every browser process inherit.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
import structlog.testing
from PIL import Image
from prometheus_client import REGISTRY

from shared.errors import (
    CaptureTimeout,
    ConfigurationError,
    EngineError,
    HttpErrorStatus,
    NavigationFailed,
    ResultTooLarge,
    SelectorNotFound,
)
from shared.jobs import CaptureOptions
from tests.procs import BROWSER_NAMES
from tests.servers import LOOPBACK_POLICY, PageServer, free_port
from worker.engines.base import Capture
from worker.engines.browser import (
    CLOSE_GRACE_S,
    SYSTEM_CHROMIUM,
    SYSTEM_HEADLESS_SHELL,
    chromium_args,
    find_chromium,
)
from worker.engines.chromium import ChromiumEngine

T = TypeVar("T")

#: Environment variable whose value marks the processes of one engine under test.
MARK_VARIABLE = "CHROMIUM_ENGINE_TEST_MARK"

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
RED = (255, 0, 0)
BLUE = (0, 0, 255)


@dataclass(frozen=True, slots=True)
class Proc:
    """A live process seen in /proc."""

    pid: int
    session: int
    #: The command line, arguments joined by spaces (Chromium's children rewrite theirs
    #: into one space-separated string).
    command: str
    marked: bool

    @property
    def is_browser(self) -> bool:
        """The main browser process (Chromium's children all carry ``--type=``)."""
        executable = Path(self.command.split(" ", 1)[0]).name
        return executable in BROWSER_NAMES and "--type=" not in self.command

    @property
    def is_renderer(self) -> bool:
        return "--type=renderer" in self.command


def live_processes(mark: str) -> list[Proc]:
    """Every live (non-zombie) process, noting which carry ``MARK_VARIABLE=mark``."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # gone meanwhile
        if stat[0] not in ("Z", "X") and command:
            command = command.replace("\0", " ").strip()
            found.append(Proc(int(entry), int(stat[3]), command, needle in environ))
    return found


@dataclass
class EngineUnderTest:
    """An engine, the event loop it lives on and the mark its processes carry."""

    engine: ChromiumEngine
    runner: asyncio.Runner
    mark: str
    pages: PageServer
    #: Sessions of the browsers seen so far (Playwright starts each browser as a session
    #: leader; the processes Chromium forks stay in its session).
    sessions: set[int] = field(default_factory=set)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def options(self, path: str, **fields: Any) -> CaptureOptions:
        return CaptureOptions(url=self.pages.url(path), **fields)

    def capture(self, path: str, **fields: Any) -> Capture:
        return self.run(self.engine.capture(self.options(path, **fields)))

    def processes(self) -> list[Proc]:
        """This engine's live processes: Playwright's driver, Chromium and its children.

        The driver and the browser inherit the mark in their environment; the processes
        Chromium's zygote forks overwrite that memory with their command line, so they
        are recognised by their session, the browser's.
        """
        everything = live_processes(self.mark)
        self.sessions.update(proc.pid for proc in everything if proc.marked and proc.is_browser)
        return [proc for proc in everything if proc.marked or proc.session in self.sessions]


def start_engine(runner: asyncio.Runner, pages: PageServer, **kwargs: Any) -> EngineUnderTest:
    """A started engine whose processes carry a fresh mark."""
    mark = uuid.uuid4().hex
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MARK_VARIABLE, mark)  # inherited by Playwright's driver, then Chromium
        engine = ChromiumEngine(max_result_bytes=kwargs.pop("max_result_bytes", 50_000_000),
                                policy=kwargs.pop("policy", LOOPBACK_POLICY), **kwargs)
        runner.run(engine.start())
    return EngineUnderTest(engine, runner, mark, pages)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def chromium(runner: asyncio.Runner, page_server: PageServer) -> Iterator[EngineUnderTest]:
    """The module's engine, started once."""
    under_test = start_engine(runner, page_server)
    try:
        yield under_test
    finally:
        runner.run(under_test.engine.aclose())


def image(capture: Capture) -> Image.Image:
    picture = Image.open(io.BytesIO(capture.data))
    picture.load()
    return picture


def rgb(picture: Image.Image, x: int, y: int) -> tuple[int, ...]:
    return tuple(picture.convert("RGB").getpixel((x, y)))  # type: ignore[arg-type]


def wait_until(condition: Any, *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# --- find_chromium ------------------------------------------------------------------


def test_find_chromium_prefers_the_configured_path(tmp_path: Path) -> None:
    binary = tmp_path / "my-chromium"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_chromium(str(binary), bundled=SYSTEM_CHROMIUM) == str(binary)


def test_find_chromium_refuses_a_configured_path_that_is_not_executable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not an executable file"):
        find_chromium(str(tmp_path / "missing"))
    (tmp_path / "plain").write_text("")
    with pytest.raises(ConfigurationError, match="not an executable file"):
        find_chromium(str(tmp_path / "plain"))


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_find_chromium_prefers_the_headless_shell_then_playwrights_build(tmp_path: Path) -> None:
    shell, bundled = tmp_path / "chromium-headless-shell", tmp_path / "chrome"
    _executable(shell)
    _executable(bundled)
    assert find_chromium(None, bundled=str(bundled), headless_shell=str(shell)) == str(shell)
    shell.unlink()
    assert find_chromium(None, bundled=str(bundled), headless_shell=str(shell)) == str(bundled)


def test_find_chromium_falls_back_to_the_full_chromium_and_says_so(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        found = find_chromium(None, bundled=str(tmp_path / "chrome"),
                              headless_shell=str(tmp_path / "shell"))
    assert found == (shutil.which("chromium") or SYSTEM_CHROMIUM)
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "headless shell is not installed" in warning["event"]
    assert warning["executable"] == found


def test_the_default_browser_on_this_machine_is_the_headless_shell() -> None:
    # make install puts chromium-headless-shell on every machine the tests run on.
    assert find_chromium(None) == SYSTEM_HEADLESS_SHELL


def test_chromium_args_add_no_sandbox_only_when_asked() -> None:
    assert "--no-sandbox" in chromium_args(no_sandbox=True)
    assert "--no-sandbox" not in chromium_args(no_sandbox=False)
    assert "--disable-quic" in chromium_args(no_sandbox=False)


# --- Output ---------------------------------------------------------------------------


def test_png_has_the_viewport_size_and_page_details(chromium: EngineUnderTest) -> None:
    capture = chromium.capture("/index.html", width=640, height=480)
    picture = image(capture)
    assert (picture.format, picture.size) == ("PNG", (640, 480))
    assert capture.content_type == "image/png"
    assert capture.http_status == 200
    assert capture.title == "Shotline test page"
    assert capture.final_url == chromium.pages.url("/index.html")
    assert rgb(picture, 5, 5) == WHITE
    assert rgb(picture, 40 + 150, 40 + 100 + 60) == RED  # inside #box, below the heading


def test_device_scale_factor_multiplies_pixels(chromium: EngineUnderTest) -> None:
    picture = image(chromium.capture("/index.html", width=640, height=480, device_scale_factor=2))
    assert picture.size == (1280, 960)


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_lossy_formats_decode(chromium: EngineUnderTest, fmt: str, pil_format: str) -> None:
    capture = chromium.capture("/index.html", width=500, height=400, format=fmt, quality=70)
    picture = image(capture)
    assert (picture.format, picture.size) == (pil_format, (500, 400))
    assert capture.content_type == f"image/{fmt}"
    red, green, blue = rgb(picture, 40 + 150, 40 + 100 + 60)
    assert red > 200 and green < 60 and blue < 60


def test_pdf(chromium: EngineUnderTest) -> None:
    capture = chromium.capture("/index.html", format="pdf")
    assert capture.data.startswith(b"%PDF")
    assert capture.content_type == "application/pdf"
    assert capture.title == "Shotline test page"


def test_full_page_and_max_height(chromium: EngineUnderTest) -> None:
    full = image(chromium.capture("/tall.html", width=400, height=300, full_page=True))
    assert full.size == (400, 3000)
    assert rgb(full, 10, 2500) == (255, 255, 0)
    capped = image(
        chromium.capture("/tall.html", width=400, height=300, full_page=True, max_height=1200)
    )
    assert capped.size == (400, 1200)
    assert rgb(capped, 10, 500) == (0, 128, 0)
    assert rgb(capped, 10, 1150) == BLUE  # the top of the page, cut below the second block
    shorter = image(
        chromium.capture("/tall.html", width=400, height=300, full_page=True, max_height=5000)
    )
    assert shorter.size == (400, 3000)


def test_selector_captures_the_element(chromium: EngineUnderTest) -> None:
    picture = image(chromium.capture("/index.html", selector="#box"))
    assert picture.size == (300, 200)
    assert rgb(picture, 150, 100) == RED
    assert rgb(picture, 0, 0) == RED and rgb(picture, 299, 199) == RED
    sharp = image(chromium.capture("/index.html", selector="#box", device_scale_factor=2))
    assert sharp.size == (600, 400)


def test_selector_below_the_fold(chromium: EngineUnderTest) -> None:
    picture = image(chromium.capture("/tall.html", width=400, height=300, selector=".c"))
    assert picture.size == (400, 1000)
    assert rgb(picture, 200, 10) == (255, 255, 0)
    assert rgb(picture, 200, 990) == (255, 255, 0)


def test_missing_selector_is_a_permanent_error(chromium: EngineUnderTest) -> None:
    with pytest.raises(SelectorNotFound, match="#nothing-here") as caught:
        chromium.capture("/index.html", selector="#nothing-here")
    assert caught.value.code == "selector_not_found"
    assert not caught.value.retryable
    with pytest.raises(SelectorNotFound, match="not a valid selector"):
        chromium.capture("/index.html", selector="##")


def test_wait_for_selector_captures_late_content(chromium: EngineUnderTest) -> None:
    capture = chromium.capture("/late.html", width=400, height=300, wait_for_selector="#late")
    colors = image(capture).convert("RGB").getcolors(maxcolors=100_000) or []
    blue_pixels = sum(count for count, color in colors if color == BLUE)
    assert blue_pixels == 120 * 80  # the whole late element, added 700 ms after the script ran


def test_wait_for_selector_that_never_matches(chromium: EngineUnderTest) -> None:
    started = time.monotonic()
    with pytest.raises(SelectorNotFound, match="#never"):
        chromium.capture("/index.html", wait_for_selector="#never", timeout_ms=1500)
    assert time.monotonic() - started < 3
    assert chromium.engine.open_contexts == 0


def test_dark_mode_switches_the_color_scheme(chromium: EngineUnderTest) -> None:
    light = image(chromium.capture("/index.html", width=400, height=300))
    dark = image(chromium.capture("/index.html", width=400, height=300, dark_mode=True))
    assert rgb(light, 5, 5) == WHITE
    assert rgb(dark, 5, 5) == BLACK


def test_delay_ms_waits_before_the_capture(chromium: EngineUnderTest) -> None:
    started = time.monotonic()
    chromium.capture("/index.html", delay_ms=600)
    assert time.monotonic() - started >= 0.6


def test_result_above_the_limit(chromium: EngineUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chromium.engine, "max_result_bytes", 1024)
    with pytest.raises(ResultTooLarge, match="1024"):
        chromium.capture("/index.html")


def test_concurrent_captures_share_the_browser(chromium: EngineUnderTest) -> None:
    async def three() -> list[Capture]:
        return await asyncio.gather(*(
            chromium.engine.capture(chromium.options("/index.html", width=width, height=300))
            for width in (300, 400, 500)
        ))

    captures = chromium.run(three())
    assert [image(capture).size for capture in captures] == [(300, 300), (400, 300), (500, 300)]
    assert len([proc for proc in chromium.processes() if proc.is_browser]) == 1
    assert chromium.engine.open_contexts == 0


# --- Failures ---------------------------------------------------------------------------


def test_http_error_status(chromium: EngineUnderTest) -> None:
    with pytest.raises(HttpErrorStatus, match="404") as caught:
        chromium.capture("/status/404")
    assert caught.value.status == 404


def test_closed_port_fails_navigation(chromium: EngineUnderTest) -> None:
    with pytest.raises(NavigationFailed, match="ERR_CONNECTION_REFUSED") as caught:
        chromium.run(chromium.engine.capture(
            CaptureOptions(url=f"http://127.0.0.1:{free_port()}/")
        ))
    assert not caught.value.retryable


def test_download_is_not_a_page(chromium: EngineUnderTest) -> None:
    with pytest.raises(NavigationFailed, match="download"):
        chromium.capture("/download.bin")


def test_slow_page_times_out_within_the_limit(chromium: EngineUnderTest) -> None:
    started = time.monotonic()
    with pytest.raises(CaptureTimeout, match="1500 ms") as caught:
        chromium.capture("/slow?ms=20000", timeout_ms=1500)
    assert time.monotonic() - started < 3
    assert caught.value.retryable
    assert chromium.engine.open_contexts == 0


def test_hung_page_times_out_and_is_closed(chromium: EngineUnderTest) -> None:
    started = time.monotonic()
    with pytest.raises(CaptureTimeout):
        chromium.capture("/busy.html", timeout_ms=1500)
    assert time.monotonic() - started < 3
    assert chromium.engine.open_contexts == 0
    assert chromium.capture("/index.html").http_status == 200


def test_frozen_browser_cannot_stretch_the_time_limit(chromium: EngineUnderTest) -> None:
    [browser] = [proc for proc in chromium.processes() if proc.is_browser]
    os.kill(browser.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(CaptureTimeout, match="1500 ms"):
            chromium.capture("/index.html", timeout_ms=1500)
        elapsed = time.monotonic() - started
    finally:
        os.kill(browser.pid, signal.SIGCONT)
    assert elapsed < 1.5 + CLOSE_GRACE_S + 1

    async def contexts_closed() -> bool:
        for _ in range(100):
            if chromium.engine.open_contexts == 0:
                return True
            await asyncio.sleep(0.05)
        return False

    assert chromium.capture("/index.html").http_status == 200
    assert chromium.run(contexts_closed())  # the late context was closed once it existed


def test_captures_share_no_cookies_or_storage(chromium: EngineUnderTest) -> None:
    first = chromium.capture("/cookie.html")
    second = chromium.capture("/cookie.html")
    assert first.title == "fresh,set"
    assert second.title == "fresh,set"


def test_renderer_crash_is_a_retryable_engine_error(chromium: EngineUnderTest) -> None:
    async def crash_during_capture() -> None:
        # hang.html never finishes loading: its image is served after 60 s. The page server
        # is the session's: earlier tests (test_capture_concurrency) asked for it too.
        asked = chromium.pages.requests.count("/slow?ms=60000")
        capture = asyncio.ensure_future(
            chromium.engine.capture(chromium.options("/hang.html", timeout_ms=20000))
        )
        try:
            for _ in range(200):
                if chromium.pages.requests.count("/slow?ms=60000") > asked:
                    break
                await asyncio.sleep(0.05)
            renderers = [proc for proc in chromium.processes() if proc.is_renderer]
            assert renderers
            for proc in renderers:
                os.kill(proc.pid, signal.SIGKILL)
        except BaseException:
            capture.cancel()
            raise
        started = time.monotonic()
        with pytest.raises(EngineError, match="crashed") as caught:
            await capture
        assert time.monotonic() - started < 5
        assert caught.value.retryable

    chromium.run(crash_during_capture())
    assert chromium.engine.open_contexts == 0
    assert chromium.capture("/index.html").http_status == 200


def test_killed_browser_is_relaunched(chromium: EngineUnderTest) -> None:
    restarts_before = REGISTRY.get_sample_value("shotline_browser_restarts_total")
    [browser] = [proc for proc in chromium.processes() if proc.is_browser]
    os.kill(browser.pid, signal.SIGKILL)
    assert wait_until(lambda: all(proc.pid != browser.pid for proc in chromium.processes()))

    assert chromium.capture("/index.html").http_status == 200
    [relaunched] = [proc for proc in chromium.processes() if proc.is_browser]
    assert relaunched.pid != browser.pid
    assert REGISTRY.get_sample_value("shotline_browser_restarts_total") == (restarts_before or 0) + 1


def test_aclose_leaves_no_process_behind(runner: asyncio.Runner, page_server: PageServer) -> None:
    own = start_engine(runner, page_server)
    try:
        assert own.capture("/index.html").http_status == 200
        running = own.processes()
        assert any(proc.is_browser for proc in running)
        assert any("--type=zygote" in proc.command for proc in running)  # found by session
        assert any("playwright" in proc.command for proc in running)  # the driver
    finally:
        runner.run(own.engine.aclose())
    assert wait_until(lambda: not own.processes(), timeout=5), own.processes()
    runner.run(own.engine.aclose())  # idempotent

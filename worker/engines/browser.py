"""One headless Chromium per engine, launched through Playwright and relaunched when it dies.

:class:`SharedBrowser` owns the Playwright driver and the browser process; the
``chromium`` engine (:mod:`worker.engines.chromium`) only opens and closes contexts in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Final

import psutil
import structlog
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from shared.errors import ConfigurationError, EngineError
from shared.metrics import record_browser_restart
from worker.engines.driver_signals import driver_environment
from worker.engines.egress import EgressGate

log = structlog.get_logger("shotline.engines.browser")

#: Where Debian's chromium package puts its launcher.
SYSTEM_CHROMIUM: Final = "/usr/bin/chromium"

#: Debian's ``chromium-headless-shell``: the same Chromium release built as the headless
#: shell (what Playwright itself runs headless), 2-4x less CPU per capture than the full
#: browser. The binary itself, not ``/usr/bin/chromium-headless-shell``: that launcher is a
#: shell script that does not ``exec``, so killing it would leave the browser running.
SYSTEM_HEADLESS_SHELL: Final = "/usr/lib/chromium/chromium-headless-shell"

#: Flags for every launch (Playwright adds its own automation defaults on top).
CHROMIUM_ARGS: Final = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-default-browser-check",
    "--dns-prefetch-disable",
    # Confinement (see worker/engines/egress.py): Chromium resolves no name itself (every
    # connection goes to the egress gate by name), sends loopback through the proxy too,
    # keeps WebRTC off UDP (which no proxy carries), and denies permission prompts.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-bypass-list=<-loopback>",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    # The same for the headless shell, which has no preference layer and ignores the flag
    # above (and full Chromium ignores this one): tests/test_ssrf_browser.py shows both.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--deny-permission-prompts",
)

#: The proxy bypass list of every capture context: nothing bypasses it, loopback included.
NO_PROXY_BYPASS: Final = "<-loopback>"

#: How long Chromium may take to start.
LAUNCH_TIMEOUT_MS: Final = 30_000

#: How long closing a context or the browser may take before it counts as hung.
CLOSE_TIMEOUT_S: Final = 10.0

#: How long a capture waits for its context to close before leaving that to the background.
CLOSE_GRACE_S: Final = 2.0


def find_chromium(
    configured: str | None,
    *,
    bundled: str | None = None,
    headless_shell: str = SYSTEM_HEADLESS_SHELL,
) -> str:
    """The Chromium binary to launch.

    ``configured`` (``SHOTLINE_CHROMIUM_PATH``) when set; otherwise the headless shell
    (``headless_shell``, Debian's ``chromium-headless-shell``); otherwise Playwright's own
    build (``bundled``, Playwright's expected path) when it is installed; otherwise the
    full ``chromium`` from ``PATH`` or :data:`SYSTEM_CHROMIUM`, with a warning: it works,
    at several times the CPU per capture.

    Raises:
        ConfigurationError: the configured path is not an executable file, or no Chromium
            was found at all.
    """
    if configured is not None:
        if _is_executable(configured):
            return configured
        raise ConfigurationError(
            f"SHOTLINE_CHROMIUM_PATH {configured!r} is not an executable file"
        )
    for candidate in (headless_shell, bundled):
        if candidate and _is_executable(candidate):
            return candidate
    for candidate in (shutil.which("chromium"), SYSTEM_CHROMIUM):
        if candidate and _is_executable(candidate):
            log.warning(
                "The Chromium headless shell is not installed; capturing with the full"
                " Chromium, which costs several times the CPU per capture."
                " Install chromium-headless-shell (make install).",
                executable=candidate, headless_shell=headless_shell,
            )
            return candidate
    raise ConfigurationError(
        "no Chromium found: install the chromium-headless-shell package (make install) "
        "or set SHOTLINE_CHROMIUM_PATH"
    )


def _is_executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def chromium_args(
    *, no_sandbox: bool, proxy_server: str | None = None, js_heap_mb: int | None = None
) -> list[str]:
    """Command-line flags for Chromium; ``--no-sandbox`` only when asked (e.g. as root).

    ``proxy_server`` is the proxy of everything outside the capture contexts (which get
    their own); ``js_heap_mb`` caps each renderer's JavaScript heap.
    """
    args = [*CHROMIUM_ARGS, *(["--no-sandbox"] if no_sandbox else [])]
    if proxy_server is not None:
        args.append(f"--proxy-server={proxy_server}")
    if js_heap_mb is not None:
        args.append(f"--js-flags=--max-old-space-size={js_heap_mb}")
    return args


def memory_capped_launcher(executable: str, memory_mb: int, directory: Path) -> Path:
    """A launcher script in ``directory`` that runs ``executable`` with every process of
    Chromium (browser, renderers...) limited to ``memory_mb`` MiB of data (``RLIMIT_DATA``).

    The JavaScript heap limit does not cover ArrayBuffers, canvases or images; this does:
    past it an allocation fails in the page (or its renderer dies), never the worker.
    Address space (``RLIMIT_AS``) is not limited: V8 reserves huge ranges it never uses.
    """
    launcher = directory / "chromium-memory-capped"
    launcher.write_text(
        "#!/bin/sh\n"
        f"ulimit -d {memory_mb * 1024} || exit 1\n"
        f'exec {shlex.quote(executable)} "$@"\n'
    )
    launcher.chmod(0o700)
    return launcher


def browser_rss_bytes(*, pid: int | None = None) -> int:
    """Resident memory of the Chromium processes this process started (its descendants),
    without the pages each shares with the others.

    Every Chromium process maps the same binary, fonts and shared-memory buffers: summing
    plain RSS counts those once per process (1.2 GB for ~0.5 GB really used, with a warm
    context's renderer beside a capture's), so a browser would be recycled for being made
    of several processes rather than for growing. What a leak or a heavy page grows is
    memory of its own, which this counts. Playwright's driver (``node``) is left out: it is
    not the browser and is not recycled.
    """
    total = 0
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        try:
            if child.name() != "node":
                memory = child.memory_info()
                total += memory.rss - memory.shared
        except psutil.Error:
            continue  # gone meanwhile
    return total


def first_line(message: str) -> str:
    """The first line of a Playwright error message (the rest is its call log)."""
    return message.strip().splitlines()[0] if message.strip() else "unknown error"


class SharedBrowser:
    """A headless Chromium that all captures of one engine open their contexts in.

    The browser is launched in a task that callers await through :func:`asyncio.shield`:
    a capture whose time runs out while Chromium starts does not abandon a half-started
    browser, the next capture gets it. A browser that crashed or was killed is noticed
    (``is_connected()``, the ``disconnected`` event) and relaunched on the next use.

    Chromium is launched with an :class:`EgressGate` that refuses everything as its proxy:
    only the capture contexts, which get gates of their own, reach the network.
    ``js_heap_mb`` caps each renderer's JavaScript heap, ``memory_mb`` the data of each
    Chromium process (see :func:`memory_capped_launcher`).
    """

    def __init__(
        self,
        *,
        executable_path: str | None,
        no_sandbox: bool,
        recycle_after: int | None = None,
        recycle_rss_bytes: int | None = None,
        js_heap_mb: int | None = None,
        memory_mb: int | None = None,
    ) -> None:
        self._configured_path = executable_path
        self._no_sandbox = no_sandbox
        self._recycle_after = recycle_after
        self._recycle_rss_bytes = recycle_rss_bytes
        self._js_heap_mb = js_heap_mb
        self._memory_mb = memory_mb
        self._launcher_dir: Path | None = None
        self._launcher: str | None = None
        self._outside_gate = EgressGate(None)
        #: Contexts handed to captures in the current browser since it was launched.
        self.served = 0
        #: Contexts opened ahead of demand and not yet handed to a capture.
        self._spares: set[BrowserContext] = set()
        #: Recycled browsers still running captures: closed when their last one ends.
        self._retiring: set[Browser] = set()
        #: Browsers launched so far (the first one included).
        self.launches = 0
        self._start_lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._executable: str | None = None
        self._browser: Browser | None = None
        self._launching: asyncio.Task[Browser] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran (and :meth:`aclose` did not since)."""
        return self._playwright is not None

    @property
    def executable(self) -> str | None:
        """The Chromium binary in use, once started."""
        return self._executable

    @property
    def current(self) -> Browser | None:
        """The running browser, or None (not launched yet, gone, or being relaunched)."""
        browser = self._browser
        return browser if browser is not None and browser.is_connected() else None

    @property
    def open_contexts(self) -> int:
        """Browser contexts open right now for captures (one per capture in progress;
        spare contexts opened ahead of demand are not counted)."""
        browsers = [self.current, *self._retiring]
        return sum(
            len([context for context in browser.contexts if context not in self._spares])
            for browser in browsers if browser is not None and browser.is_connected()
        )

    async def start(self) -> None:
        """Start Playwright's driver and launch Chromium. Idempotent.

        Raises:
            ConfigurationError: no usable Chromium binary.
            EngineError: Chromium failed to start.
        """
        async with self._start_lock:
            if self._playwright is None:
                await self._outside_gate.start()
                with driver_environment():  # ignores a SIGTERM to the process group
                    playwright = await async_playwright().start()
                try:
                    self._executable = find_chromium(
                        self._configured_path, bundled=playwright.chromium.executable_path
                    )
                except BaseException:
                    await playwright.stop()
                    raise
                self._launcher = self._executable
                if self._memory_mb is not None:
                    self._launcher_dir = Path(tempfile.mkdtemp(prefix="shotline-chromium-"))
                    self._launcher = str(memory_capped_launcher(
                        self._executable, self._memory_mb, self._launcher_dir
                    ))
                self._playwright = playwright
                self._closing = False
        await self.connected()

    async def connected(self) -> Browser:
        """The running browser, (re)launched first when there is none or it disconnected."""
        browser = self._browser
        if browser is not None and browser.is_connected():
            return browser
        if self._launching is None or self._launching.done():
            self._launching = asyncio.create_task(self._launch())
            self._launching.add_done_callback(_retrieve_exception)
        return await asyncio.shield(self._launching)

    async def new_context(
        self, open_context: Callable[[Browser], Awaitable[BrowserContext]], *, spare: bool = False
    ) -> BrowserContext:
        """A new context from ``open_context(browser)`` in the running browser.

        A ``spare`` context is opened ahead of demand: it does not count as served nor keep
        the browser from being recycled until a capture :meth:`claim` s it.

        A browser that died while the event loop was idle (between two tasks of a worker)
        still looks connected until its ``disconnected`` event is processed: when opening
        the context fails because the browser is gone, Chromium is relaunched and the
        context opened in the new one.
        """
        browser = await self.connected()
        try:
            context = await open_context(browser)
        except PlaywrightError as exc:
            if browser.is_connected() and "has been closed" not in exc.message:
                raise
            self.discard(browser)
            context = await open_context(await self.connected())
        if spare:
            self._spares.add(context)
        else:
            self.served += 1
        return context

    def claim(self, context: BrowserContext) -> None:
        """A capture takes the spare ``context``: from now on it counts as served."""
        self._spares.discard(context)
        self.served += 1

    def forget_spare(self, context: BrowserContext) -> None:
        """The spare ``context`` was closed without serving."""
        self._spares.discard(context)

    async def _launch(self) -> Browser:
        if self._playwright is None or self._launcher is None:
            raise EngineError("the chromium engine is not started")
        previous, self._browser = self._browser, None
        if previous is not None:
            log.warning("Chromium is gone; relaunching it.", executable=self._executable)
            self._in_background(self._close_browser(previous))
        started = time.monotonic()
        try:
            browser = await self._playwright.chromium.launch(
                executable_path=self._launcher,
                headless=True,
                args=chromium_args(
                    no_sandbox=self._no_sandbox,
                    proxy_server=self._outside_gate.proxy_server,
                    js_heap_mb=self._js_heap_mb,
                ),
                chromium_sandbox=not self._no_sandbox,
                timeout=LAUNCH_TIMEOUT_MS,
                # Chromium ends when the worker closes it, not on the driver's signals
                # (worker.engines.driver_signals).
                handle_sigint=False, handle_sigterm=False, handle_sighup=False,
            )
        except PlaywrightError as exc:
            raise EngineError(f"Chromium failed to start: {first_line(exc.message)}") from exc
        browser.on("disconnected", self._on_disconnected)
        self._browser = browser
        self.served = 0
        self.launches += 1
        if self.launches > 1:
            record_browser_restart()
        log.info(
            "Chromium started.",
            executable=self._executable,
            version=browser.version,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        return browser

    def _on_disconnected(self, browser: Browser) -> None:
        if self._browser is browser:
            self._browser = None
            if not self._closing:
                log.warning("Chromium disconnected; it will be relaunched for the next capture.")

    async def close_context(self, creating: asyncio.Future[BrowserContext]) -> None:
        """Close the context ``creating`` yields (once it exists), waiting for that at most
        :data:`CLOSE_GRACE_S`: past the grace the closing goes on in the background, so
        a capture never outlives its deadline by more than the grace.

        A context that is not created and closed within :data:`CLOSE_TIMEOUT_S` means the
        browser hangs: it is dropped (closed in the background) and the next capture gets
        a new one.
        """
        closing = self._in_background(self._close_context(creating))
        await asyncio.wait({closing}, timeout=CLOSE_GRACE_S)

    async def _close_context(self, creating: asyncio.Future[BrowserContext]) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.wait({creating})
                if creating.cancelled() or creating.exception() is not None:
                    return
                await creating.result().close()
            self._maybe_recycle()
        except TimeoutError:
            creating.cancel()
            browser = self._browser
            if creating.done() and not creating.cancelled():
                browser = creating.result().browser
            log.warning("A browser context did not close in time; dropping the browser.")
            if browser is not None:
                self.discard(browser)
        except PlaywrightError:
            pass  # the browser is gone already, and the context with it

    def _maybe_recycle(self) -> None:
        """Recycle the browser once it served its share or grew too big.

        An idle browser is closed at once. One with captures still running (several in
        flight on one browser) is retired instead: new captures open their contexts in a
        new browser, and the old one is closed when its last capture ends, so recycling
        never fails a capture and memory stays bounded under constant load (at most two
        browsers, briefly). Retired browsers whose captures all ended are closed here too.
        """
        for old in list(self._retiring):
            if not old.is_connected() or not self._busy(old):
                self._retiring.discard(old)
                self.discard(old)
        browser = self._browser
        if browser is None or not browser.is_connected() or self._retiring:
            return  # the memory figure would count the retiring browser's processes too
        reason = None
        rss = 0
        if self._recycle_after is not None and self.served >= self._recycle_after:
            reason = "captures"
        elif self._recycle_rss_bytes is not None:
            rss = browser_rss_bytes()
            if rss >= self._recycle_rss_bytes:
                reason = "memory"
        if reason is None:
            return
        busy = self._busy(browser)
        log.info("Recycling Chromium.", reason=reason, captures=self.served,
                 rss_mb=round(rss / 2**20) if rss else None,
                 waiting_for_captures=self.open_contexts if busy else 0)
        if busy:
            self._browser = None  # the next capture launches a new one
            self._retiring.add(browser)
        else:
            self.discard(browser)

    def _busy(self, browser: Browser) -> bool:
        """Whether a capture still has a context open in ``browser``."""
        return any(context not in self._spares for context in browser.contexts)

    def discard(self, browser: Browser) -> None:
        """Stop using ``browser`` (it hangs) and close it in the background."""
        if self._browser is browser:
            self._browser = None
        self._in_background(self._close_browser(browser))

    async def _close_browser(self, browser: Browser) -> None:
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await browser.close()

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def aclose(self) -> None:
        """Close the browser and stop Playwright's driver. Idempotent.

        Stopping the driver ends every browser process it launched, so no Chromium
        survives this even when a browser hung.
        """
        async with self._start_lock:
            self._closing = True
            launching, self._launching = self._launching, None
            if launching is not None:
                await asyncio.wait({launching})
            browser, self._browser = self._browser, None
            retiring, self._retiring = self._retiring, set()
            for one in (browser, *retiring):
                if one is not None:
                    await self._close_browser(one)
            if self._background:
                _done, pending = await asyncio.wait(set(self._background), timeout=CLOSE_TIMEOUT_S)
                for task in pending:
                    task.cancel()
            playwright, self._playwright = self._playwright, None
            if playwright is not None:
                await playwright.stop()
                log.info("Chromium stopped.", executable=self._executable)
            await self._outside_gate.aclose()
            launcher_dir, self._launcher_dir = self._launcher_dir, None
            if launcher_dir is not None:
                shutil.rmtree(launcher_dir, ignore_errors=True)


def _retrieve_exception(task: asyncio.Task[Browser]) -> None:
    # A launch whose every waiter timed out must not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()

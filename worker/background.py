"""Event loops in threads of the worker's processes.

:class:`LoopThread` is the one loop-in-a-thread of the worker: an asyncio loop running in a
daemon thread, to which any thread hands coroutines. The capture runtime
(:mod:`worker.runtime`) and the webhook runtime (:mod:`worker.webhooks`) run their tasks'
coroutines on one; :class:`BackgroundLoop` runs a long-lived :class:`Loop` (the sweeper,
the fair queue's dispatcher) on one in the worker's main process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import structlog

log = structlog.get_logger("shotline.worker")

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running forever in a daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop (from any thread); its future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait (at most ``timeout`` seconds) for its result."""
        return self.submit(coro).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait for its thread; the loop is closed once the thread ended.

        Coroutines still running are abandoned: cancel them first (with :meth:`run`).
        """
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


class Loop(Protocol):
    """A background loop: the sweeper, the fair queue's dispatcher."""

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        ...


class BackgroundLoop:
    """Runs a :class:`Loop` (the sweeper, a dispatcher) on a :class:`LoopThread` of its own."""

    def __init__(
        self, build: Callable[[], tuple[Loop, Callable[[], Awaitable[None]]]],
        *, name: str,
    ) -> None:
        """``build()`` (called on the loop) returns the loop and what closes its clients."""
        self._build = build
        self._name = name
        self._thread: LoopThread | None = None
        self._stop: asyncio.Event | None = None
        self._done: concurrent.futures.Future[None] | None = None

    def start(self) -> None:
        """Build the loop's clients on its thread and start it."""
        self._thread = LoopThread(self._name)
        ready = threading.Event()
        self._done = self._thread.submit(self._main(ready))
        ready.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to stop (the sweeper resigns its leadership) and wait for its thread."""
        thread, stop, done = self._thread, self._stop, self._done
        if thread is None:
            return
        if stop is not None and not thread.loop.is_closed():
            thread.loop.call_soon_threadsafe(stop.set)
        if done is not None:
            with contextlib.suppress(concurrent.futures.TimeoutError):
                done.result(timeout)
        thread.close(timeout)

    async def _main(self, ready: threading.Event) -> None:
        try:
            self._stop = asyncio.Event()
            loop, close = self._build()
            ready.set()
            try:
                await loop.run(self._stop)
            finally:
                await close()
        except Exception:
            log.exception("background loop crashed", thread=self._name)
        finally:
            ready.set()

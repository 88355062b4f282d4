"""A background loop (the sweeper, the fair queue's dispatcher) on an event loop of its own,
in a daemon thread of the worker's main process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

log = structlog.get_logger("shotline.worker")


class Loop(Protocol):
    """A background loop: the sweeper, the fair queue's dispatcher."""

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        ...


class BackgroundLoop:
    """Runs a :class:`Loop` (the sweeper, a dispatcher) on its own event loop in a daemon
    thread of this process."""

    def __init__(
        self, build: Callable[[], tuple[Loop, Callable[[], Awaitable[None]]]],
        *, name: str,
    ) -> None:
        """``build()`` (called in the thread) returns the loop and what closes its clients."""
        self._build = build
        self._name = name
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        """Start the loop in its thread."""
        self._thread.start()
        self._ready.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to stop (the sweeper resigns its leadership) and wait for the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            loop, close = self._build()
            self._ready.set()
            try:
                await loop.run(self._stop)
            finally:
                await close()

        try:
            asyncio.run(main())
        except Exception:
            log.exception("background thread crashed", thread=self._name)
        finally:
            self._ready.set()

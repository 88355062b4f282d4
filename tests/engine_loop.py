"""An engine under test driven from synchronous tests, on an event loop of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.jobs import CaptureOptions
from worker.engines.base import Capture
from worker.engines.chromium import ChromiumEngine


class EngineOnLoop:
    """``engine`` with the ``runner`` whose loop it lives on (its browser belongs to it)."""

    def __init__(self, engine: ChromiumEngine, runner: asyncio.Runner) -> None:
        self.engine = engine
        self.runner = runner

    def capture(self, url: str, **fields: Any) -> Capture:
        """Capture ``url`` with ``fields`` as options (a 20 s timeout unless given)."""
        options = CaptureOptions(url=url, **{"timeout_ms": 20000, **fields})
        return self.runner.run(self.engine.capture(options))

    def render(self, **fields: Any) -> Capture:
        """Capture the ``html`` or ``markdown`` in ``fields`` (a 20 s timeout unless given)."""
        options = CaptureOptions(**{"timeout_ms": 20000, **fields})
        return self.runner.run(self.engine.capture(options))

"""One capture of the ``chromium`` engine in progress: its options, its deadline and the
stage it is in, so that running out of time says where it happened."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from shared.errors import CaptureError, CaptureTimeout, SelectorNotFound
from shared.jobs import CaptureOptions

#: The stage in which running out of time means the selector never matched.
WAITING_FOR_SELECTOR: Final = "waiting for wait_for_selector"


@dataclass(slots=True)
class CaptureRun:
    """One capture in progress: its options, its deadline and what it is doing now."""

    options: CaptureOptions
    deadline: float
    stage: str = field(default="opening a browser context (starting Chromium if needed)")
    #: What the capture-quality steps keep between their hooks (:mod:`worker.engines.page_quality`).
    quality: object | None = None

    def remaining_ms(self) -> float:
        """Milliseconds left before the deadline (at least 1: Playwright reads 0 as 'none')."""
        return max((self.deadline - asyncio.get_running_loop().time()) * 1000, 1.0)

    def timeout_error(self) -> CaptureError:
        """The error for running out of time in the current stage."""
        if self.stage == WAITING_FOR_SELECTOR:
            return SelectorNotFound(
                f"no element matched wait_for_selector {self.options.wait_for_selector!r} "
                f"within {self.options.timeout_ms} ms"
            )
        return CaptureTimeout(
            f"capture did not finish within {self.options.timeout_ms} ms "
            f"(still {self.stage})"
        )

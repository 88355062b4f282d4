"""What every capture engine provides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shared.jobs import CaptureOptions


@dataclass(slots=True)
class Capture:
    """The bytes an engine produced, plus what it learned about the page."""

    data: bytes
    content_type: str
    final_url: str | None = None
    http_status: int | None = None
    title: str | None = None
    blocked_requests: int = 0
    #: Size and length of a scroll video (images are measured from their bytes).
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    #: A scroll video's first frame (JPEG), for ``thumbnail_width``'s poster.
    poster: bytes | None = None
    #: Quality findings (see :class:`shared.quality.QualityResult`).
    blank: bool | None = None
    truncated: dict[str, int] | None = None
    popups_blocked: int = 0
    notes: list[str] = field(default_factory=list)


class CaptureEngine(Protocol):
    """A way of turning :class:`CaptureOptions` into bytes.

    Engines raise :class:`shared.errors.CaptureError` subclasses and never retry on
    their own: the caller decides about retries from ``error.retryable`` and
    ``error.retry_after``. One engine instance serves many captures in one event loop.
    """

    name: str

    async def start(self) -> None:
        """Acquire long-lived resources (browser, HTTP client). Idempotent."""
        ...

    async def capture(self, options: CaptureOptions, *, request_id: str | None = None) -> Capture:
        """Capture one page, within ``options.timeout_ms``."""
        ...

    async def aclose(self) -> None:
        """Release everything :meth:`start` acquired; no child process survives it."""
        ...

"""Scroll videos: the ``scroll`` options of ``format: mp4 | webm | gif`` and their bounds.

The page is recorded while it scrolls smoothly from the top to the end of the page (or
``max_height``, or ``scroll_to_selector``); see :mod:`worker.engines.scroll_video`.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.options import Selector

#: Longest scroll video, in milliseconds.
MAX_VIDEO_DURATION_MS: Final = 30_000
#: Highest frame rate of a scroll video.
MAX_VIDEO_FPS: Final = 30
#: Most device pixels in one video frame (width x height x scale²): 1920 x 1080.
MAX_VIDEO_FRAME_PIXELS: Final = 1920 * 1080
#: Shortest time the scrolling itself takes, in milliseconds.
MIN_SCROLL_MS: Final = 500
#: Time the end of the page stays on screen at the end of the video (at most), in ms.
END_HOLD_MS: Final = 500
#: Time a video needs past its duration: loading the page before, encoding after (ms).
VIDEO_TIMEOUT_MARGIN_MS: Final = 5_000


class ScrollOptions(BaseModel):
    """How a scroll video is recorded: its length, frame rate and what the scroll does."""

    model_config = ConfigDict(extra="forbid")

    duration_ms: int = Field(
        default=5000, ge=1000, le=MAX_VIDEO_DURATION_MS,
        description="Length of the video, start delay and a short hold at the end included.",
    )
    start_delay_ms: int = Field(
        default=500, ge=0, le=10_000,
        description="Time the top of the page is shown before the scrolling starts.",
    )
    fps: int = Field(default=15, ge=1, le=MAX_VIDEO_FPS, description="Frames per second.")
    scroll_back: bool = Field(
        default=False, description="Scroll down and back up to the top within the duration.",
    )
    scroll_to_selector: Selector | None = Field(
        default=None, description="Scroll to this element instead of the end of the page.",
    )

    @model_validator(mode="after")
    def _check_timing(self) -> ScrollOptions:
        if self.duration_ms - self.start_delay_ms < MIN_SCROLL_MS + END_HOLD_MS:
            raise ValueError(
                f"start_delay_ms must leave at least {MIN_SCROLL_MS + END_HOLD_MS} ms of"
                f" duration_ms for the scroll (duration_ms {self.duration_ms},"
                f" start_delay_ms {self.start_delay_ms})"
            )
        return self


def check_video_options(options: Any) -> None:
    """Refuse option combinations a scroll video cannot honour (``ValueError`` naming the
    fields and the fix); give a video without ``scroll`` the default scroll options.

    ``options`` is a :class:`shared.jobs.CaptureOptions` (typed loosely: that module
    imports this one).
    """
    if not options.format.is_video:
        if options.scroll is not None:
            raise ValueError("scroll applies to format mp4, webm or gif only")
        return
    clashing = [name for name, value in (
        ("full_page", options.full_page), ("selector", options.selector),
        ("clip", options.clip), ("quality", options.quality),
        ("omit_background", options.omit_background), ("pdf_options", options.pdf_options),
    ) if value]
    if clashing:
        raise ValueError(f"{', '.join(clashing)} cannot be combined with a scroll video"
                         f" (format {options.format.value}); the video scrolls the whole page"
                         " (up to max_height) by itself")
    if options.scroll is None:
        options.scroll = ScrollOptions()
    pixels = options.width * options.height * options.device_scale_factor ** 2
    if pixels > MAX_VIDEO_FRAME_PIXELS:
        raise ValueError(
            f"a scroll video frame may have at most {MAX_VIDEO_FRAME_PIXELS} device pixels"
            f" (1920 x 1080), not {round(pixels)} (width x height x device_scale_factor²);"
            " use a smaller viewport")
    needed = options.scroll.duration_ms + VIDEO_TIMEOUT_MARGIN_MS
    if options.timeout_ms < needed:
        raise ValueError(
            f"timeout_ms must be at least scroll.duration_ms + {VIDEO_TIMEOUT_MARGIN_MS}"
            f" ({needed}) for a scroll video, not {options.timeout_ms}")

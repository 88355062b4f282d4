"""Capture engines: ``chromium`` (Playwright, local) and ``snapapi`` (hosted)."""

from __future__ import annotations

from shared.engine_capabilities import check_engine_supports
from shared.errors import ConfigurationError
from shared.settings import Settings
from worker.engines.base import Capture, CaptureEngine

__all__ = ["Capture", "CaptureEngine", "check_engine_supports", "make_engine"]


def make_engine(settings: Settings) -> CaptureEngine:
    """The engine ``settings.engine`` names, not yet started."""
    if settings.engine == "snapapi":
        from worker.engines.snapapi import SnapApiEngine

        if settings.snapapi_key is None:
            raise ConfigurationError("SHOTLINE_SNAPAPI_KEY is required with SHOTLINE_ENGINE=snapapi")
        return SnapApiEngine(
            base_url=settings.snapapi_base_url,
            api_key=settings.snapapi_key.get_secret_value(),
            max_result_bytes=settings.max_result_bytes,
        )
    from shared.url_policy import UrlPolicy
    from worker.engines.chromium import ChromiumEngine

    return ChromiumEngine(
        policy=UrlPolicy.from_settings(settings),
        executable_path=settings.chromium_path,
        no_sandbox=settings.chromium_no_sandbox,
        max_result_bytes=settings.max_result_bytes,
        recycle_after=settings.chromium_recycle_captures,
        recycle_rss_mb=settings.chromium_recycle_rss_mb,
        js_heap_mb=settings.chromium_js_heap_mb,
        memory_mb=settings.chromium_memory_mb,
        warm_contexts=settings.chromium_warm_contexts,
        fast_screenshot=settings.chromium_fast_screenshot,
        ffmpeg_path=settings.ffmpeg_path,
    )

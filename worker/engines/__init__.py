"""Capture engines: ``chromium`` (Playwright, local) and ``snapapi`` (hosted)."""

from __future__ import annotations

from shared.errors import ConfigurationError, OptionNotSupported
from shared.jobs import CaptureOptions
from shared.settings import Settings
from worker.engines.base import Capture, CaptureEngine

__all__ = ["Capture", "CaptureEngine", "check_engine_supports", "make_engine"]


def check_engine_supports(engine: str, options: CaptureOptions) -> None:
    """Refuse ``options`` that the engine named ``engine`` cannot honour.

    Each engine keeps its own capability table beside its code: ``chromium`` honours
    every option; ``snapapi`` what maps onto SnapAPI's request
    (:func:`worker.engines.snapapi.unsupported_options`). Light to import: the API calls
    this before queueing.

    Raises:
        OptionNotSupported: naming every option that cannot be honoured.
    """
    if engine != "snapapi":
        return
    from worker.engines.snapapi import unsupported_options

    fields = unsupported_options(options)
    if fields:
        raise OptionNotSupported(
            f"the {engine} engine cannot honour: {', '.join(fields)}", fields=fields
        )


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

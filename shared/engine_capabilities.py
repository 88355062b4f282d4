"""What each capture engine can honour: the API refuses the rest before queueing (422).

The API reads this table, never the engines' code (:mod:`worker` is not imported by
:mod:`api`). ``chromium`` honours every option; ``snapapi`` what maps onto SnapAPI's
``ScreenshotRequest`` (:data:`SNAPAPI_OPTIONS`, the options of the engine's wire mapping
:data:`worker.engines.snapapi.SNAPAPI_FIELDS`, checked equal by the tests) plus what
Shotline applies itself whatever the engine.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

from shared.errors import OptionNotSupported
from shared.jobs import CaptureOptions
from shared.options import ResourceType

#: The options SnapAPI's request carries (one field each in the engine's wire mapping).
SNAPAPI_OPTIONS: Final = frozenset({
    "url", "format", "quality", "width", "height", "device_scale_factor", "full_page",
    "max_height", "selector", "wait_until", "wait_for_selector", "delay_ms", "timeout_ms",
    "dark_mode", "device", "is_mobile", "has_touch", "block_ads", "block_trackers",
    "block_cookie_banners", "hide_selectors", "block_resources", "css", "js", "click_selector",
    "user_agent", "headers", "cookies", "http_auth", "locale", "timezone", "reduced_motion",
    "pdf_options", "clip", "block_chats", "fail_if_content_missing", "fail_if_content_contains",
})

#: Options Shotline applies itself whatever the engine (``landscape`` travels with
#: ``device`` as ``isLandscape``, or is already applied to width and height).
ENGINE_INDEPENDENT_OPTIONS: Final = frozenset({"thumbnail_width", "landscape", "retries"})

#: The ``block_resources`` values SnapAPI has a field for.
SNAPAPI_RESOURCE_TYPES: Final = frozenset({
    ResourceType.stylesheet, ResourceType.image, ResourceType.media, ResourceType.font,
    ResourceType.script, ResourceType.xhr, ResourceType.fetch, ResourceType.websocket,
})
#: Cookie attributes SnapAPI's cookie objects cannot carry, with their defaults.
_COOKIE_ATTRIBUTES_NOT_SENT: Final[Mapping[str, Any]] = {
    "secure": False, "http_only": False, "same_site": None,
}


@functools.cache
def option_defaults() -> Mapping[str, Any]:
    """Every capture option's default, computed once: pydantic's ``get_default`` inspects
    each default factory's signature on every call, which showed in per-job profiles.
    Compared against only, never handed out."""
    return {name: info.get_default(call_default_factory=True)
            for name, info in CaptureOptions.model_fields.items()}


def unsupported_options(options: CaptureOptions) -> list[str]:
    """The options (dotted paths) set in ``options`` that SnapAPI cannot honour: anything
    outside :data:`SNAPAPI_OPTIONS` and :data:`ENGINE_INDEPENDENT_OPTIONS` set to a
    non-default value, and values SnapAPI's fields cannot carry."""
    mapped = SNAPAPI_OPTIONS | ENGINE_INDEPENDENT_OPTIONS
    defaults = option_defaults()
    unsupported = [name for name in CaptureOptions.model_fields
                   if name not in mapped and getattr(options, name) != defaults[name]]
    if options.format.is_video:
        unsupported.insert(0, "format")  # SnapAPI takes pictures only: no scroll videos
    unsupported += [
        f"block_resources.{index}"
        for index, kind in enumerate(options.block_resources)
        if kind not in SNAPAPI_RESOURCE_TYPES
    ]
    unsupported += [
        f"cookies.{index}.{attribute}"
        for index, cookie in enumerate(options.cookies)
        for attribute, default in _COOKIE_ATTRIBUTES_NOT_SENT.items()
        if getattr(cookie, attribute) != default
    ]
    return unsupported


def check_engine_supports(engine: str, options: CaptureOptions) -> None:
    """Refuse ``options`` that the engine named ``engine`` cannot honour.

    Raises:
        OptionNotSupported: naming every option that cannot be honoured.
    """
    if engine != "snapapi":
        return
    fields = unsupported_options(options)
    if fields:
        raise OptionNotSupported(
            f"the {engine} engine cannot honour: {', '.join(fields)}", fields=fields
        )

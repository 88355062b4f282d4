"""The ``snapapi`` engine: captures delegated to SnapAPI's hosted screenshot API.

One ``POST /v1/screenshot`` per capture on a long-lived :class:`httpx.AsyncClient`.
SnapAPI's answers become :class:`~worker.engines.base.Capture` or one of Shotline's
:class:`~shared.errors.CaptureError` subclasses; the engine never retries by itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import structlog

from shared.backoff import parse_retry_after
from shared.correlation import http_headers
from shared.devices import DEVICES
from shared.engine_capabilities import option_defaults, unsupported_options
from shared.errors import (
    CaptureError,
    CaptureTimeout,
    ConfigurationError,
    EngineError,
    EngineRejected,
    ResultTooLarge,
)
from shared.jobs import CaptureOptions
from shared.metrics import record_snapapi_response
from worker.engines.base import Capture

log = structlog.get_logger("shotline.engines.snapapi")

#: Path of SnapAPI's capture endpoint under its base URL.
SCREENSHOT_PATH: Final = "/v1/screenshot"

#: Header SnapAPI takes the API key from.
API_KEY_HEADER: Final = "X-Api-Key"

#: 4xx answers that are worth trying again later (everything else 4xx is permanent).
RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 425, 429})

#: Longest error text from SnapAPI kept in an error message.
MAX_ERROR_TEXT: Final = 300

#: Most bytes of an error answer read (the rest is dropped with the connection).
MAX_ERROR_BODY: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class SnapApiField:
    """How one :class:`CaptureOptions` field travels in SnapAPI's ``ScreenshotRequest``.

    ``always`` fields are sent even at their default value (they define the output);
    the others only when set to something other than :class:`CaptureOptions`' default.
    ``convert`` turns the JSON form of the value into SnapAPI's (e.g. nested camelCase);
    with ``spread`` it returns several top-level keys (``key`` is then only a label).
    """

    option: str
    key: str
    always: bool = False
    convert: Callable[[Any], Any] | None = None
    spread: bool = False


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    """``{"page_size": "a4", "scale": None}`` → ``{"pageSize": "a4"}`` (unset keys dropped)."""
    return {_camel(key): item for key, item in value.items() if item is not None}


def _cookies(cookies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SnapAPI's cookie objects carry name, value, domain and path only."""
    keep = ("name", "value", "domain", "path")
    return [{k: c[k] for k in keep if c.get(k) is not None} for c in cookies]


def _clip(clip: Mapping[str, int]) -> dict[str, int]:
    return {"clip" + name.title(): clip[name] for name in ("x", "y", "width", "height")}


#: The whole option mapping: adding a SnapAPI option is one line here.
SNAPAPI_FIELDS: Final[tuple[SnapApiField, ...]] = (
    SnapApiField("url", "url", always=True),
    SnapApiField("format", "format", always=True),
    SnapApiField("quality", "quality"),
    SnapApiField("width", "width", always=True),
    SnapApiField("height", "height", always=True),
    SnapApiField("device_scale_factor", "deviceScaleFactor"),
    SnapApiField("full_page", "fullPage"),
    SnapApiField("max_height", "fullPageMaxHeight"),
    SnapApiField("selector", "selector"),
    SnapApiField("wait_until", "waitUntil"),
    SnapApiField("wait_for_selector", "waitForSelector"),
    SnapApiField("delay_ms", "delay"),
    SnapApiField("timeout_ms", "timeout", always=True),
    SnapApiField("dark_mode", "darkMode"),
    SnapApiField("device", "device"),
    SnapApiField("is_mobile", "isMobile"),
    SnapApiField("has_touch", "hasTouch"),
    SnapApiField("block_ads", "blockAds"),
    SnapApiField("block_trackers", "blockTrackers"),
    SnapApiField("block_cookie_banners", "blockCookieBanners"),
    SnapApiField("block_chats", "blockChatWidgets"),
    SnapApiField("fail_if_content_missing", "failIfContentMissing"),
    SnapApiField("fail_if_content_contains", "failIfContentContains"),
    SnapApiField("hide_selectors", "hideSelectors"),
    SnapApiField("block_resources", "blockResources"),
    SnapApiField("css", "css"),
    SnapApiField("js", "javascript"),
    SnapApiField("click_selector", "clickSelector"),
    SnapApiField("user_agent", "userAgent"),
    SnapApiField("headers", "extraHeaders"),
    SnapApiField("cookies", "cookies", convert=_cookies),
    SnapApiField("http_auth", "httpAuth"),
    SnapApiField("locale", "locale"),
    SnapApiField("timezone", "timezone"),
    SnapApiField("reduced_motion", "reducedMotion"),
    SnapApiField("pdf_options", "pdfOptions", convert=_camel_keys),
    SnapApiField("clip", "clipX/clipY/clipWidth/clipHeight", convert=_clip, spread=True),
)

def snapapi_request_body(options: CaptureOptions) -> dict[str, Any]:
    """SnapAPI's camelCase ``ScreenshotRequest`` body for ``options`` (:data:`SNAPAPI_FIELDS`)."""
    values = options.model_dump(mode="json")
    body: dict[str, Any] = {}
    for field in SNAPAPI_FIELDS:
        value = getattr(options, field.option)
        if not field.always and (value is None or value == option_defaults()[field.option]):
            continue
        wire = values[field.option]
        converted = field.convert(wire) if field.convert is not None else wire
        if field.spread:
            body.update(converted)
        else:
            body[field.key] = converted
    if options.device is not None:
        _defer_to_device_preset(body, options)
    return body


def _defer_to_device_preset(body: dict[str, Any], options: CaptureOptions) -> None:
    """Let SnapAPI apply its own preset: drop what the preset sets unless overridden."""
    assert options.device is not None
    preset = DEVICES[options.device]
    width, height = preset.oriented(landscape=options.landscape)
    from_preset: dict[str, tuple[Any, Any]] = {
        "width": (width, options.width),
        "height": (height, options.height),
        "deviceScaleFactor": (preset.device_scale_factor, options.device_scale_factor),
        "isMobile": (preset.is_mobile, options.is_mobile),
        "hasTouch": (preset.has_touch, options.has_touch),
        "userAgent": (preset.user_agent, options.user_agent),
    }
    for key, (preset_value, value) in from_preset.items():
        if value == preset_value:
            body.pop(key, None)
        else:
            body[key] = value
    if options.landscape:
        body["isLandscape"] = True


def _rate_limit_reset_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (unix milliseconds), if readable."""
    if value is None:
        return None
    try:
        reset_ms = float(value.strip())
    except ValueError:
        return None
    seconds = reset_ms / 1000 - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _error_text(response: httpx.Response, body: bytes) -> str:
    """SnapAPI's JSON ``message`` (or ``error``), else a short excerpt of the body."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, Mapping):
        for key in ("message", "error"):
            text = payload.get(key)
            if isinstance(text, str) and text.strip():
                return text.strip()[:MAX_ERROR_TEXT]
    text = body[:MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    if text and response.headers.get("content-type", "").startswith(("text/plain", "application/")):
        return " ".join(text.split())
    return response.reason_phrase or "no details"


def error_for_response(response: httpx.Response, body: bytes) -> CaptureError:
    """The Shotline error for a non-200 SnapAPI answer with (the start of) its ``body``."""
    status = response.status_code
    detail = _error_text(response, body)
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        return EngineRejected(
            f"SnapAPI answered a redirect ({status}) to {location}; check the SnapAPI base URL",
            status=status,
        )
    if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None and status == 429:
            retry_after = _rate_limit_reset_after(response.headers.get("x-ratelimit-reset"))
        return EngineError(
            f"SnapAPI answered {status}: {detail}", retry_after=retry_after, status=status
        )
    if 400 <= status < 500:
        return EngineRejected(f"SnapAPI refused the capture ({status}): {detail}", status=status)
    return EngineError(f"SnapAPI answered an unexpected {status}: {detail}", status=status)


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"SnapAPI base URL must be an http(s) URL, not {base_url!r}")
    return base_url.rstrip("/")


class SnapApiEngine:
    """Captures through SnapAPI (``POST /v1/screenshot``), one HTTP client per process.

    ``timeout_margin`` seconds are added to each capture's ``timeout_ms`` for the whole
    request, so SnapAPI can report its own timeout before we give up on it. A ``client``
    passed in is used as is and left open by :meth:`aclose`.
    """

    name = "snapapi"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        client: httpx.AsyncClient | None = None,
        timeout_margin: float = 5.0,
        connect_timeout: float = 10.0,
        max_connections: int = 32,
        max_result_bytes: int | None = None,
    ) -> None:
        if not api_key:
            raise ConfigurationError("the SnapAPI engine needs an API key")
        if timeout_margin < 0:
            raise ConfigurationError("timeout_margin must not be negative")
        self.base_url = _check_base_url(base_url)
        self.endpoint = self.base_url + SCREENSHOT_PATH
        self._api_key = api_key
        self._client = client
        self._owns_client = client is None
        self._timeout_margin = timeout_margin
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._max_result_bytes = max_result_bytes

    def __repr__(self) -> str:  # keeps the API key out of reprs and tracebacks
        return f"SnapApiEngine(base_url={self.base_url!r})"

    async def start(self) -> None:
        """Create the HTTP client (unless one was passed in). Idempotent."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                trust_env=False,  # never route captures through proxy env vars
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                    keepalive_expiry=30.0,
                ),
                timeout=httpx.Timeout(60.0, connect=self._connect_timeout),
                headers={"User-Agent": "shotline-snapapi-engine"},
            )
            self._owns_client = True

    async def aclose(self) -> None:
        """Close the HTTP client if this engine created it."""
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.aclose()

    async def capture(self, options: CaptureOptions, *, request_id: str | None = None) -> Capture:
        """Capture ``options.url`` through SnapAPI within ``options.timeout_ms`` plus the margin.

        Raises :class:`EngineRejected` for SnapAPI's permanent refusals (4xx), a retryable
        :class:`EngineError` for 429/5xx and connection failures, :class:`CaptureTimeout`
        when no answer arrives in time.
        """
        unsupported = unsupported_options(options)
        if unsupported:  # the API refuses these; a job queued under another engine may not
            raise EngineRejected(f"SnapAPI cannot honour: {', '.join(unsupported)}")
        await self.start()
        client = self._client
        assert client is not None
        deadline = options.timeout_ms / 1000 + self._timeout_margin
        headers = {API_KEY_HEADER: self._api_key, **http_headers(request_id=request_id)}
        body = snapapi_request_body(options)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(deadline):
                response, data = await self._post(client, body, headers, deadline)
        except (TimeoutError, httpx.TimeoutException) as exc:
            record_snapapi_response("timeout", time.perf_counter() - started)
            raise CaptureTimeout(f"SnapAPI did not answer within {deadline:g}s") from exc
        except httpx.HTTPError as exc:
            record_snapapi_response("error", time.perf_counter() - started)
            reason = str(exc) or type(exc).__name__
            raise EngineError(f"could not get an answer from SnapAPI: {reason}") from exc
        record_snapapi_response(response.status_code, time.perf_counter() - started)
        duration_ms = round((time.perf_counter() - started) * 1000)
        log.info("SnapAPI answered.", status=response.status_code, duration_ms=duration_ms,
                 bytes=len(data), snapapi_request_id=response.headers.get("x-request-id"))
        if response.status_code != 200:
            raise error_for_response(response, data)
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not data or content_type.startswith(("application/json", "text/")):
            raise EngineError(
                f"SnapAPI answered 200 without an image ({content_type or 'no content type'},"
                f" {len(data)} bytes)",
                status=200,
            )
        return Capture(data=data, content_type=content_type or options.format.content_type)

    async def _post(
        self,
        client: httpx.AsyncClient,
        body: dict[str, Any],
        headers: dict[str, str],
        deadline: float,
    ) -> tuple[httpx.Response, bytes]:
        timeout = httpx.Timeout(deadline, connect=min(self._connect_timeout, deadline))
        async with client.stream(
            "POST", self.endpoint, json=body, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                return response, await _read_at_most(response, MAX_ERROR_BODY)
            if self._max_result_bytes is None:
                return response, await response.aread()
            data = await _read_at_most(response, self._max_result_bytes + 1)
            if len(data) > self._max_result_bytes:
                raise ResultTooLarge(
                    f"SnapAPI's result exceeds the limit of {self._max_result_bytes} bytes"
                )
            return response, data


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``response``'s body; stops reading once past it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


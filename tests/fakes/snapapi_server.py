"""A stand-in for SnapAPI (the third-party capture API) speaking its published HTTP API.

It serves ``POST /v1/screenshot`` over real HTTP on 127.0.0.1: the API key is checked,
the JSON body is validated against the spec's ``ScreenshotRequest`` (camelCase, unknown
keys refused), and the answer is a real image of the requested size and format. Every
request is recorded; answers can be scripted (429, 5xx, delays, hangs, dropped
connections) and concurrency is measured::

    with SnapApiStandIn(api_key="sk_test_x") as snap:
        engine = SnapApiEngine(base_url=snap.base_url, api_key="sk_test_x")
        snap.script([(429, {"Retry-After": "1"}), 503, 200])
        ...
        assert snap.requests[0].json["fullPage"] is True
        assert snap.peak_concurrency <= 4

Run on its own (an instant engine for benchmarks)::

    python -m tests.fakes.snapapi_server --port 8765 --api-key sk_test_bench
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hmac
import io
import json
import math
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any, Final, TypeAlias, cast
from urllib.parse import urlsplit

from PIL import Image, features

from tests.quiet_http import QuietHTTPServer

SCREENSHOT_PATH: Final = "/v1/screenshot"
DEFAULT_API_KEY: Final = "sk_test_standin"
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
#: A hung request is released at the latest after this many seconds.
MAX_HANG_SECONDS: Final = 600.0

# --- The spec's ScreenshotRequest, as a table -------------------------------------------
# Transcribed from snapapi-screenshot-openapi.yml (v2.0.0), components/schemas/
# ScreenshotRequest, in JSON-schema form; the validator below interprets it. Objects with
# ``properties`` refuse keys they do not list (SnapAPI's validation is strict about them).

Schema: TypeAlias = dict[str, Any]


def _string(**rules: Any) -> Schema:
    return {"type": "string", **rules}


def _integer(**rules: Any) -> Schema:
    return {"type": "integer", **rules}


def _number(**rules: Any) -> Schema:
    return {"type": "number", **rules}


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def _array(items: Schema, **rules: Any) -> Schema:
    return {"type": "array", "items": items, **rules}


def _object(**properties: Schema) -> Schema:
    return {"type": "object", "properties": properties}


def _map(values: Schema) -> Schema:
    return {"type": "object", "additionalProperties": values}


BOOLEAN: Final[Schema] = {"type": "boolean"}
STRING: Final[Schema] = _string()
URI: Final[Schema] = _string(format="uri")
FORMATS: Final = ("png", "jpeg", "webp", "avif", "pdf")
DEVICES: Final = (
    "desktop-1080p", "desktop-1440p", "desktop-4k", "macbook-pro-13", "macbook-pro-16",
    "imac-24", "iphone-12", "iphone-13", "iphone-14", "iphone-14-pro", "iphone-15",
    "iphone-15-pro", "iphone-15-pro-max", "iphone-se", "ipad", "ipad-mini", "ipad-air",
    "ipad-pro-11", "ipad-pro-12.9", "pixel-7", "pixel-8", "pixel-8-pro",
    "samsung-galaxy-s23", "samsung-galaxy-s24", "samsung-galaxy-tab-s9",
)
RESOURCE_TYPES: Final = (
    "document", "stylesheet", "image", "media", "font", "script", "xhr", "fetch", "websocket",
)
PDF_PAGE_SIZES: Final = ("a4", "a3", "a5", "letter", "legal", "tabloid", "custom")

SCREENSHOT_REQUEST: Final[Schema] = _object(
    url=URI,
    html=_string(maxLength=5_000_000),
    markdown=_string(maxLength=1_000_000),
    format=_enum(*FORMATS),
    quality=_integer(minimum=1, maximum=100),
    device=_enum(*DEVICES),
    width=_integer(minimum=100, maximum=3840),
    height=_integer(minimum=100, maximum=2160),
    deviceScaleFactor=_number(minimum=1, maximum=3),
    isMobile=BOOLEAN,
    hasTouch=BOOLEAN,
    isLandscape=BOOLEAN,
    fullPage=BOOLEAN,
    fullPageScrollDelay=_integer(),
    fullPageMaxHeight=_integer(maximum=50_000),
    selector=STRING,
    clipX=_integer(),
    clipY=_integer(),
    clipWidth=_integer(),
    clipHeight=_integer(),
    delay=_integer(minimum=0, maximum=30_000),
    timeout=_integer(minimum=1000, maximum=60_000),
    waitUntil=_enum("load", "domcontentloaded", "networkidle"),
    waitForSelector=STRING,
    darkMode=BOOLEAN,
    reducedMotion=BOOLEAN,
    css=_string(maxLength=100_000),
    javascript=_string(maxLength=100_000),
    hideSelectors=_array(STRING, maxItems=50),
    clickSelector=STRING,
    clickDelay=_integer(),
    blockAds=BOOLEAN,
    blockTrackers=BOOLEAN,
    blockCookieBanners=BOOLEAN,
    blockChatWidgets=BOOLEAN,
    blockResources=_array(_enum(*RESOURCE_TYPES)),
    userAgent=STRING,
    extraHeaders=_map(STRING),
    cookies=_array(_object(name=STRING, value=STRING, domain=STRING, path=STRING)),
    httpAuth=_object(username=STRING, password=STRING),
    proxy=_object(server=URI, username=STRING, password=STRING),
    geolocation=_object(latitude=_number(), longitude=_number(), accuracy=_number()),
    timezone=STRING,
    locale=STRING,
    pdfOptions=_object(
        pageSize=_enum(*PDF_PAGE_SIZES),
        landscape=BOOLEAN,
        printBackground=BOOLEAN,
        scale=_number(minimum=0.1, maximum=2),
        marginTop=STRING,
        marginBottom=STRING,
        marginLeft=STRING,
        marginRight=STRING,
        headerTemplate=STRING,
        footerTemplate=STRING,
        displayHeaderFooter=BOOLEAN,
        pageRanges=STRING,
    ),
    thumbnail=_object(
        enabled=BOOLEAN, width=_integer(), height=_integer(), fit=_enum("cover", "contain", "fill")
    ),
    failOnHttpError=BOOLEAN,
    failIfContentMissing=_array(STRING),
    failIfContentContains=_array(STRING),
    cache=BOOLEAN,
    cacheTtl=_integer(minimum=60, maximum=2_592_000),
    responseType=_enum("binary", "base64", "json"),
    includeMetadata=BOOLEAN,
    extractMetadata=_object(
        fonts=BOOLEAN, colors=BOOLEAN, links=BOOLEAN, httpStatusCode=BOOLEAN
    ),
    storage=_object(enabled=BOOLEAN, destination=_enum("snapapi", "user_s3")),
    webhookUrl=URI,
    webhookHeaders=_map(STRING),
    **{"async": BOOLEAN},
)

_TYPE_NAMES: Final = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "a boolean", "array": "an array", "object": "an object",
}


def _has_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def validate(value: Any, schema: Schema, path: str = "body") -> list[str]:
    """Every way ``value`` breaks ``schema`` (the JSON-schema subset the table uses)."""
    kind = schema["type"]
    if not _has_type(value, kind):
        return [f"{path} must be {_TYPE_NAMES[kind]}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path} must be one of: {', '.join(schema['enum'])}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path} must be >= {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path} must be <= {schema['maximum']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path} must NOT have more than {schema['maxLength']} characters")
    if schema.get("format") == "uri":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(f'{path} must match format "uri"')
    if kind == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path} must NOT have more than {schema['maxItems']} items")
        for index, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}/{index}")
    if kind == "object":
        properties: Mapping[str, Schema] = schema.get("properties", {})
        extra: Schema | None = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                errors += validate(item, properties[key], f"{path}/{key}")
            elif extra is not None:
                errors += validate(item, extra, f"{path}/{key}")
            else:
                hint = f" (did you mean '{_camel(key)}'?)" if _camel(key) in properties else ""
                errors.append(f"{path} must NOT have additional property '{key}'{hint}")
    return errors


# --- What the stand-in renders -----------------------------------------------------------

CONTENT_TYPES: Final = {
    "png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp",
    "avif": "image/avif", "pdf": "application/pdf",
}
_PILLOW_FORMATS: Final = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
#: PDF page sizes in points (portrait).
PDF_POINTS: Final = {
    "a4": (595, 842), "a3": (842, 1191), "a5": (420, 595),
    "letter": (612, 792), "legal": (612, 1008), "tabloid": (792, 1224),
}


@functools.lru_cache(maxsize=64)
def render_image(fmt: str, width: int, height: int, quality: int, dark: bool) -> bytes:
    """An image of ``width`` x ``height`` pixels in ``fmt`` (cached: benchmarks need speed)."""
    image = Image.new("RGB", (width, height), (24, 24, 32) if dark else (236, 240, 248))
    image.paste((66, 99, 235), (0, 0, width, max(1, height // 10)))  # a "header" band
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", compress_level=1)
    else:
        image.save(out, _PILLOW_FORMATS[fmt], quality=quality)
    return out.getvalue()


@functools.lru_cache(maxsize=16)
def render_pdf(width_pt: int, height_pt: int) -> bytes:
    """A one-page PDF of ``width_pt`` x ``height_pt`` points, with a valid xref table."""
    content = b"0.26 0.39 0.92 rg 36 36 120 60 re f"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << >> /Contents 4 0 R >>"
        % (width_pt, height_pt),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref,
    )
    return bytes(out)


def render(body: Mapping[str, Any], *, page_height: int, element_size: tuple[int, int]
           ) -> tuple[bytes, str, int, int]:
    """The capture SnapAPI would return for ``body``: (data, content type, width, height).

    Viewport ``width`` x ``height``; a full page is ``page_height`` CSS pixels tall (capped
    by ``fullPageMaxHeight``); an element capture is ``element_size``; all scaled by
    ``deviceScaleFactor``. PDFs are one page of ``pdfOptions.pageSize`` (A4 by default).
    """
    fmt = body.get("format", "png")
    width, height = body.get("width", 1280), body.get("height", 800)
    if fmt == "pdf":
        pdf = body.get("pdfOptions", {})
        size = PDF_POINTS.get(pdf.get("pageSize", "a4"), (width * 3 // 4, height * 3 // 4))
        points = (size[1], size[0]) if pdf.get("landscape") else size
        return render_pdf(*points), CONTENT_TYPES[fmt], points[0], points[1]
    if body.get("selector"):
        width, height = element_size
    elif body.get("fullPage"):
        height = max(height, page_height)
        height = min(height, body.get("fullPageMaxHeight") or height)
    scale = body.get("deviceScaleFactor", 1)
    width, height = round(width * scale), round(height * scale)
    data = render_image(fmt, width, height, body.get("quality", 80), bool(body.get("darkMode")))
    return data, CONTENT_TYPES[fmt], width, height


# --- Requests, scripted replies ----------------------------------------------------------


@dataclass(slots=True)
class RecordedRequest:
    """One request as the stand-in received it; ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    received_at: float
    status: int | None = None  # set as the answer is sent (None: dropped or not yet answered)

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer to one screenshot request.

    ``body`` ``None`` means: the real capture for a 200, SnapAPI's JSON error otherwise; a
    mapping is sent as JSON, bytes/str as they are. ``delay`` waits first; ``hang`` never
    answers (until :meth:`SnapApiStandIn.release`/reset/close); ``drop`` closes the
    connection without an answer.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | Mapping[str, Any] | None = None
    delay: float = 0.0
    hang: bool = False
    drop: bool = False


HANG: Final = Reply(hang=True)
DROP: Final = Reply(drop=True)

ScriptItem: TypeAlias = (
    Reply
    | int
    | tuple[int, Mapping[str, str]]
    | tuple[int, Mapping[str, str], bytes | str | Mapping[str, Any]]
)


def as_reply(item: ScriptItem) -> Reply:
    """``item`` as a :class:`Reply`.

    Accepts ``503``, ``(429, {"Retry-After": "1"})``, ``(502, {}, b"<html>")``.
    """
    if isinstance(item, Reply):
        return item
    if isinstance(item, int):
        return Reply(status=item)
    if len(item) == 2:
        return Reply(status=item[0], headers=item[1])
    return Reply(status=item[0], headers=item[1], body=item[2])


ERROR_MESSAGES: Final = {
    400: "Invalid request",
    401: "Invalid API key",
    402: "Monthly quota exceeded. Upgrade your plan.",
    403: "This feature is not available on your plan",
    429: "Rate limit exceeded. Please slow down.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable. Please retry.",
    504: "Capture timed out upstream",
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """SnapAPI's error JSON: ``{statusCode, error, message}``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"statusCode": status, "error": phrase,
            "message": message or ERROR_MESSAGES.get(status, phrase)}


@dataclass(slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    drop: bool = False


def _json_answer(status: int, payload: Mapping[str, Any],
                 headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
                   json.dumps(payload).encode())


# --- The server -------------------------------------------------------------------------


class SnapApiStandIn:
    """SnapAPI on 127.0.0.1, in a background thread (``with`` it, or start()/close()).

    ``delay`` (seconds) applies to every screenshot request; ``hang`` makes every request
    wait without answering. Scripted replies (:meth:`script`) are used, in order, after
    the key and the body passed validation. :meth:`reset` clears all of it between tests.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        rate_limit: int = 300,
        enforce_rate_limit: bool = False,
        page_height: int = 2400,
        element_size: tuple[int, int] = (320, 200),
    ) -> None:
        self.api_key = api_key
        self.delay = delay
        self.hang = False
        self.rate_limit = rate_limit
        self.enforce_rate_limit = enforce_rate_limit
        self.page_height = page_height
        self.element_size = element_size
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._release = threading.Event()
        self._active = 0
        self._peak = 0
        self._window_start = time.time()
        self._window_count = 0
        self._httpd = _Server((host, port), _Handler, self)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to configure as the SnapAPI base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def screenshot_url(self) -> str:
        """Absolute URL of ``POST /v1/screenshot``."""
        return self.base_url + SCREENSHOT_PATH

    def start(self) -> SnapApiStandIn:
        """Serve in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name="snapapi-stand-in", daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        """Stop serving and release every waiting request."""
        self._release.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SnapApiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- test controls --------------------------------------------------------------------

    def script(self, replies: Iterable[ScriptItem]) -> None:
        """Queue answers for the next screenshot requests (then back to real captures)."""
        with self._lock:
            self._script.extend(as_reply(item) for item in replies)

    def release(self) -> None:
        """Let every hanging or delayed request go on now (hung ones then answer)."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()

    def reset(self) -> None:
        """Forget requests, script, delay, hang and counters; release waiting requests."""
        self.release()
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._peak = self._active
            self._window_start, self._window_count = time.time(), 0
        self.delay = 0.0
        self.hang = False

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the screenshot requests received so far."""
        return [r.json for r in self.requests if r.path == SCREENSHOT_PATH]

    @property
    def concurrency(self) -> int:
        """Screenshot requests being handled right now."""
        with self._lock:
            return self._active

    @property
    def peak_concurrency(self) -> int:
        """The most screenshot requests handled at once since the last reset."""
        with self._lock:
            return self._peak

    # -- request handling (called from handler threads) -----------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
            self._peak = max(self._peak, self._active)
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def _rate_limit_headers(self) -> tuple[dict[str, str], bool]:
        """SnapAPI's X-RateLimit-* headers for one more request, and whether it exceeds them."""
        now = time.time()
        with self._lock:
            if now - self._window_start >= 60:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            count, reset = self._window_count, self._window_start + 60
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - count)),
            "X-RateLimit-Reset": str(int(reset * 1000)),
        }
        over = self.enforce_rate_limit and count > self.rate_limit
        if over:
            headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
        return headers, over

    def _authorized(self, headers: Mapping[str, str]) -> bool | None:
        """True/False for a right/wrong key, ``None`` when no key was sent."""
        key = headers.get("x-api-key")
        if key is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        if key is None:
            return None
        return hmac.compare_digest(key.encode(), self.api_key.encode())

    def _wait(self, seconds: float) -> None:
        with self._lock:
            release = self._release
        release.wait(seconds)

    def answer_screenshot(self, request: RecordedRequest) -> _Answer:
        """Authenticate, validate, then answer as scripted or with a real capture."""
        authorized = self._authorized(request.headers)
        if not authorized:
            message = "Missing API key" if authorized is None else "Invalid API key"
            return _json_answer(401, error_body(401, message))
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return _json_answer(
                415, error_body(415, f"Unsupported Media Type: {content_type or 'none'}")
            )
        body = request.json
        if not isinstance(body, dict):
            return _json_answer(400, error_body(400, "body must be a JSON object"))
        errors = validate(body, SCREENSHOT_REQUEST)
        if not errors and not any(body.get(key) for key in ("url", "html", "markdown")):
            errors.append("body must have one of 'url', 'html' or 'markdown'")
        if errors:
            return _json_answer(400, error_body(400, "; ".join(errors)))
        if body.get("async") or body.get("webhookUrl"):
            return _json_answer(501, error_body(501, "async captures are not in the stand-in"))
        rate_headers, over_limit = self._rate_limit_headers()
        if over_limit:
            return _json_answer(429, error_body(429), rate_headers)
        with self._lock:
            reply = self._script.popleft() if self._script else Reply()
        if self.hang or reply.hang:
            self._wait(MAX_HANG_SECONDS)
        elif self.delay or reply.delay:
            self._wait(self.delay + reply.delay)
        if reply.drop:
            return _Answer(0, {}, b"", drop=True)
        headers = {**rate_headers, **reply.headers}
        if reply.status == 200 and reply.body is None:
            return self._capture(body, headers)
        if reply.body is None or isinstance(reply.body, Mapping):
            payload = error_body(reply.status) if reply.body is None else reply.body
            return _json_answer(reply.status, payload, headers)
        data = reply.body.encode() if isinstance(reply.body, str) else reply.body
        return _Answer(reply.status, {"Content-Type": "text/plain; charset=utf-8", **headers},
                       data)

    def _capture(self, body: Mapping[str, Any], headers: dict[str, str]) -> _Answer:
        started = time.perf_counter()
        fmt = body.get("format", "png")
        if fmt == "avif" and not features.check("avif"):
            return _json_answer(400, error_body(400, "avif is not supported here"), headers)
        data, content_type, width, height = render(
            body, page_height=self.page_height, element_size=self.element_size
        )
        response_type = body.get("responseType", "binary")
        if response_type == "json":
            took = round((time.perf_counter() - started) * 1000)
            return _json_answer(200, {
                "success": True, "cached": False, "data": base64.b64encode(data).decode(),
                "format": fmt, "width": width, "height": height, "fileSize": len(data),
                "took": took,
            }, headers)
        if response_type == "base64":
            return _Answer(200, {"Content-Type": "text/plain", **headers},
                           base64.b64encode(data))
        return _Answer(200, {"Content-Type": content_type, **headers}, data)


class _Server(QuietHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 stand_in: SnapApiStandIn) -> None:
        self.stand_in = stand_in
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server_version = "SnapApiStandIn/1"
    timeout = 300  # idle keep-alive connections do not keep threads forever
    # One write per answer and no Nagle: otherwise each answer waits out a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    wbufsize = 256 * 1024

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def stand_in(self) -> SnapApiStandIn:
        return cast(_Server, self.server).stand_in

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(_json_answer(411, error_body(411, "Content-Length required")))
            return
        if int(length) > MAX_BODY_BYTES:
            self._send(_json_answer(413, error_body(413, "Request body is too large")))
            self.close_connection = True
            return
        request = self._recorded(self.rfile.read(int(length)))
        if urlsplit(self.path).path != SCREENSHOT_PATH:
            self._send(_json_answer(404, error_body(404, f"Route POST:{self.path} not found")),
                       request)
            return
        with self.stand_in._in_flight():
            answer = self.stand_in.answer_screenshot(request)
            self._send(answer, request)

    def do_GET(self) -> None:
        request = self._recorded(b"")
        if urlsplit(self.path).path == "/health":
            self._send(_json_answer(200, {"status": "ok"}), request)
        else:
            self._send(_json_answer(404, error_body(404, f"Route GET:{self.path} not found")),
                       request)

    def _recorded(self, body: bytes) -> RecordedRequest:
        request = RecordedRequest(
            method=self.command, path=urlsplit(self.path).path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body, client_port=int(self.client_address[1]), received_at=time.time(),
        )
        self.stand_in._record(request)
        return request

    def _send(self, answer: _Answer, request: RecordedRequest | None = None) -> None:
        if answer.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        request_id = (request.headers.get("x-request-id") if request else None) or (
            "req_" + uuid.uuid4().hex
        )
        if request is not None:  # recorded before the client can read the answer and look
            request.status = answer.status
        try:
            self.send_response(answer.status)
            headers = {"X-Request-Id": request_id, **answer.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:  # the client gave up (timeouts, hang tests)
            self.close_connection = True


def main(argv: Sequence[str] | None = None) -> None:
    """Run the stand-in in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description="A SnapAPI stand-in on 127.0.0.1.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--rate-limit", type=int, default=300, help="requests per minute")
    parser.add_argument("--enforce-rate-limit", action="store_true",
                        help="answer 429 beyond --rate-limit requests per minute")
    args = parser.parse_args(argv)
    stand_in = SnapApiStandIn(
        api_key=args.api_key, host=args.host, port=args.port, delay=args.delay,
        rate_limit=args.rate_limit, enforce_rate_limit=args.enforce_rate_limit,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"SnapAPI stand-in listening on {stand_in.base_url}", flush=True)
    try:
        stand_in.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stand_in.close()


if __name__ == "__main__":
    main()

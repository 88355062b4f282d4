"""The job model: what a client asks for (:class:`CaptureOptions`) and what Shotline
records about it (:class:`Job`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from shared.constants import MAX_URL_LENGTH
from shared.devices import DEVICES, Device
from shared.options import (
    MAX_COOKIES,
    MAX_HEADERS,
    MAX_HIDE_SELECTORS,
    MAX_INJECTED_CHARS,
    REDACTED,
    Clip,
    Cookie,
    HeaderName,
    HeaderValue,
    HttpAuth,
    Locale,
    PdfOptions,
    ResourceType,
    Selector,
    Timezone,
)
from shared.quality import QualityOptions, QualityResult
from shared.scroll import ScrollOptions, check_video_options


class ImageFormat(StrEnum):
    """Output formats."""

    png = "png"
    jpeg = "jpeg"
    webp = "webp"
    pdf = "pdf"
    # Scroll videos (see shared.scroll).
    mp4 = "mp4"
    webm = "webm"
    gif = "gif"

    @property
    def is_video(self) -> bool:
        """A scroll video (``mp4``, ``webm``, ``gif``)."""
        return self in (ImageFormat.mp4, ImageFormat.webm, ImageFormat.gif)

    @property
    def content_type(self) -> str:
        """MIME type of files in this format."""
        if self in (ImageFormat.mp4, ImageFormat.webm):
            return f"video/{self.value}"
        return "application/pdf" if self is ImageFormat.pdf else f"image/{self.value}"

    @property
    def extension(self) -> str:
        """File name extension (without the dot)."""
        return self.value


class WaitUntil(StrEnum):
    """When navigation counts as finished."""

    load = "load"
    domcontentloaded = "domcontentloaded"
    networkidle = "networkidle"


class JobStatus(StrEnum):
    """Lifecycle of a job: queued → running → succeeded | failed (never backwards)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"

    @property
    def is_terminal(self) -> bool:
        """True once the job has its final answer."""
        return self in (JobStatus.succeeded, JobStatus.failed)


def _http_url(value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    parsed = HttpUrl(value.strip())
    if parsed.scheme not in ("http", "https"):
        raise ValueError("only http and https URLs can be captured")
    if not parsed.host:
        raise ValueError("URL has no host")
    return str(parsed)


HttpUrlStr = Annotated[
    str,
    AfterValidator(_http_url),
    Field(json_schema_extra={"format": "uri"}, examples=["https://example.com"]),
]


class CaptureOptions(QualityOptions):
    """What to capture and how. Unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://example.com"},
                {"url": "https://example.com", "format": "jpeg", "quality": 80, "full_page": True},
            ]
        },
    )

    url: HttpUrlStr = Field(description="Page to capture (http or https).")
    format: ImageFormat = Field(default=ImageFormat.png, description="Output format.")
    quality: int | None = Field(
        default=None, ge=1, le=100, description="JPEG/WebP quality (1-100).", examples=[80]
    )
    width: int = Field(default=1280, ge=100, le=3840, description="Viewport width in CSS pixels.")
    height: int = Field(default=800, ge=100, le=2160, description="Viewport height in CSS pixels.")
    device_scale_factor: float = Field(default=1, ge=1, le=3, description="Device pixel ratio.")
    full_page: bool = Field(default=False, description="Capture the whole scrollable page.")
    max_height: int | None = Field(
        default=None, ge=100, le=20000, description="Cap for full-page height in CSS pixels."
    )
    selector: str | None = Field(
        default=None, min_length=1, max_length=1000, description="Capture only this element."
    )
    wait_until: WaitUntil = Field(default=WaitUntil.load, description="Navigation end condition.")
    wait_for_selector: str | None = Field(
        default=None, min_length=1, max_length=1000, description="Wait for this element."
    )
    delay_ms: int = Field(default=0, ge=0, le=30000, description="Extra wait before capture.")
    timeout_ms: int = Field(
        default=30000, ge=1000, le=60000,
        description="Limit of one attempt: a page that has not loaded and been captured by then"
        " fails the job with `timeout` (tried again only as `retries` asks).",
    )
    retries: int = Field(
        default=0, ge=0, le=3,
        description="Further attempts after a capture timed out (the page's fault). Shotline's"
        " own faults (browser crash, worker lost, storage hiccup) are retried regardless.",
    )
    dark_mode: bool = Field(default=False, description="Emulate prefers-color-scheme: dark.")

    # --- Device -------------------------------------------------------------------------
    device: Device | None = Field(
        default=None,
        description="Device preset: sets width, height, device_scale_factor, is_mobile, "
        "has_touch and user_agent unless given explicitly.",
        examples=["iphone-15-pro"],
    )
    is_mobile: bool = Field(default=False, description="Mobile browser (meta viewport honoured).")
    has_touch: bool = Field(default=False, description="Touch events supported.")
    landscape: bool = Field(default=False, description="Turn a portrait viewport sideways.")

    # --- Page cleanup -------------------------------------------------------------------
    block_ads: bool = Field(default=False, description="Refuse requests to ad servers.")
    block_trackers: bool = Field(default=False, description="Refuse requests to trackers.")
    block_cookie_banners: bool = Field(
        default=False, description="Accept or hide known cookie-consent banners."
    )
    hide_selectors: list[Selector] = Field(
        default_factory=list, max_length=MAX_HIDE_SELECTORS,
        description="Elements hidden (display: none) before capture.",
    )
    block_resources: list[ResourceType] = Field(
        default_factory=list, max_length=len(ResourceType),
        description="Kinds of sub-requests refused (images, fonts, scripts...).",
    )

    # --- Page control -------------------------------------------------------------------
    css: str | None = Field(
        default=None, min_length=1, max_length=MAX_INJECTED_CHARS,
        description="Style sheet added to the page before capture.",
    )
    js: str | None = Field(
        default=None, min_length=1, max_length=MAX_INJECTED_CHARS,
        description="Script run in the page before capture (may use await).",
    )
    click_selector: Selector | None = Field(default=None, description="Element clicked first.")
    user_agent: str | None = Field(default=None, min_length=1, max_length=1000)
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=MAX_HEADERS, description="Extra request headers."
    )
    cookies: list[Cookie] = Field(default_factory=list, max_length=MAX_COOKIES)
    http_auth: HttpAuth | None = Field(default=None, description="HTTP basic auth.")
    locale: Locale | None = Field(default=None, description="Browser language, e.g. de-DE.")
    timezone: Timezone | None = Field(default=None, description="IANA time zone.")
    reduced_motion: bool = Field(default=False, description="prefers-reduced-motion: reduce.")

    # --- Output -------------------------------------------------------------------------
    pdf_options: PdfOptions | None = Field(default=None, description="PDF page setup.")
    clip: Clip | None = Field(default=None, description="Capture only this rectangle.")
    omit_background: bool = Field(
        default=False, description="Transparent background where the page has none (png, webp)."
    )
    thumbnail_width: int | None = Field(
        default=None, ge=16, le=3840,
        description="Scale the image down to this width; with a video, a poster frame this wide.",
    )
    scroll: ScrollOptions | None = Field(
        default=None, description="With format mp4, webm or gif: how the scroll video is recorded."
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_device(cls, data: Any) -> Any:
        """Fill in a device preset's values for the fields the request left out."""
        if not isinstance(data, dict) or data.get("device") is None:
            return data
        try:
            preset = DEVICES[Device(data["device"])]
        except ValueError:
            return data  # the field validation reports the unknown name
        width, height = preset.oriented(landscape=bool(data.get("landscape")))
        defaults = {
            "width": width,
            "height": height,
            "device_scale_factor": preset.device_scale_factor,
            "is_mobile": preset.is_mobile,
            "has_touch": preset.has_touch,
            "user_agent": preset.user_agent,
        }
        return {**defaults, **data}

    @model_validator(mode="after")
    def _check_combinations(self) -> CaptureOptions:
        if self.quality is not None and self.format not in (ImageFormat.jpeg, ImageFormat.webp):
            raise ValueError("quality applies to jpeg and webp only")
        if self.selector is not None and self.format is ImageFormat.pdf:
            raise ValueError("selector cannot be combined with format pdf")
        if self.selector is not None and self.full_page:
            raise ValueError("selector and full_page are mutually exclusive")
        if self.pdf_options is not None and self.format is not ImageFormat.pdf:
            raise ValueError("pdf_options apply to format pdf only")
        if self.clip is not None and (self.selector is not None or self.format is ImageFormat.pdf):
            raise ValueError("clip cannot be combined with selector or format pdf")
        if self.omit_background and self.format not in (ImageFormat.png, ImageFormat.webp):
            raise ValueError("omit_background applies to png and webp only")
        if self.thumbnail_width is not None and self.format is ImageFormat.pdf:
            raise ValueError("thumbnail_width applies to images only")
        check_video_options(self)
        if self.landscape and self.height > self.width:
            # Idempotent: stored options (already turned) validate to themselves.
            self.width, self.height = self.height, self.width
        return self

    def redacted(self) -> CaptureOptions:
        """A copy fit to show: passwords and cookie values replaced by ``***``."""
        update: dict[str, Any] = {}
        if self.http_auth is not None:
            update["http_auth"] = self.http_auth.model_copy(update={"password": REDACTED})
        if self.cookies:
            update["cookies"] = [c.model_copy(update={"value": REDACTED}) for c in self.cookies]
        return self.model_copy(update=update) if update else self


class ScreenshotRequest(CaptureOptions):
    """The body of ``POST /v1/screenshots``: what to capture plus how to deliver it.

    Fields here are not capture parameters: they do not change the picture (and so are not
    part of a result's cache key).
    """

    webhook_url: HttpUrlStr | None = Field(
        default=None,
        description="Endpoint told when the job ends (events job.succeeded / job.failed),"
        " signed the Standard Webhooks way; checked by the same URL policy as `url`.",
        examples=["https://example.com/hooks/shotline"],
    )

    cache_ttl: int | None = Field(
        default=None, ge=0, le=30 * 24 * 3600,
        description="Accept a stored capture of the same options up to this many seconds old"
        " (default: the server's CACHE_TTL_SECONDS); 0 always captures anew.",
    )
    fresh: bool = Field(
        default=False, description="Skip the result cache (an identical capture in flight is still shared)."
    )

    def capture_options(self) -> CaptureOptions:
        """Only what changes the picture: the fields of :class:`CaptureOptions`."""
        return CaptureOptions.model_validate(self.model_dump(include=set(CaptureOptions.model_fields)))


class JobError(BaseModel):
    """Why a job failed."""

    code: str = Field(examples=["timeout"])
    message: str
    status: int | None = Field(default=None, description="Upstream HTTP status, when relevant.")


class ResultMetadata(QualityResult):
    """What is known about a capture's output and its page, stored and shown alike."""

    content_type: str = Field(examples=["image/png"])
    bytes: int
    width: int | None = None
    height: int | None = None
    sha256: str
    final_url: str | None = Field(default=None, description="Page URL after redirects.")
    http_status: int | None = Field(default=None, description="HTTP status of the page.")
    title: str | None = Field(default=None, description="The page's title.")
    blocked_requests: int = Field(default=0, description="Requests refused by blocking options.")
    duration_ms: int | None = Field(default=None, description="Length of a scroll video.")


class StoredFile(BaseModel):
    """Another file stored with a result (a scroll video's poster frame)."""

    key: str
    content_type: str = Field(examples=["image/jpeg"])
    bytes: int
    width: int | None = None
    height: int | None = None


class StoredResult(ResultMetadata):
    """A stored capture result, as recorded on the job (the download URL is minted per read)."""

    key: str
    destination: dict[str, Any] | None = Field(
        default=None, description="The API key's own bucket holding the result (credentials"
        " encrypted; see shared.storage.destinations); none: the default storage. Never shown.",
    )
    poster: StoredFile | None = Field(default=None, description="A scroll video's poster frame.")


class Job(BaseModel):
    """A job's status record as kept in Redis."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    options: CaptureOptions
    request_id: str | None = None
    traceparent: str | None = Field(
        default=None, description="The submitter's W3C trace context, carried to the capture task."
    )
    api_key_id: str | None = Field(default=None, description="Owner; None in single-tenant mode.")
    webhook_url: str | None = None
    batch_id: str | None = Field(default=None, description="The batch this job is part of.")
    monitor_id: str | None = Field(default=None, description="The monitor this job is a run of.")
    cached: bool = Field(default=False, description="Answered by another job's capture, at no cost.")
    capture_of: str | None = Field(
        default=None, description="The job whose capture this job reused (result cache or single-flight)."
    )
    error: JobError | None = None
    result: StoredResult | None = None
    result_expired_at: datetime | None = Field(
        default=None, description="When the retention period deleted the result's files."
    )


def new_job_id() -> str:
    """A fresh, unguessable job id."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)



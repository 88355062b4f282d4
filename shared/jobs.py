"""The job model: what a client asks for (:class:`CaptureOptions`) and what Shotline
records about it (:class:`Job`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from shared.constants import MAX_URL_LENGTH


class ImageFormat(StrEnum):
    """Output formats."""

    png = "png"
    jpeg = "jpeg"
    webp = "webp"
    pdf = "pdf"

    @property
    def content_type(self) -> str:
        """MIME type of files in this format."""
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


class CaptureOptions(BaseModel):
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
        default=30000, ge=1000, le=60000, description="Hard limit for the whole capture."
    )
    dark_mode: bool = Field(default=False, description="Emulate prefers-color-scheme: dark.")

    @model_validator(mode="after")
    def _check_combinations(self) -> CaptureOptions:
        if self.quality is not None and self.format not in (ImageFormat.jpeg, ImageFormat.webp):
            raise ValueError("quality applies to jpeg and webp only")
        if self.selector is not None and self.format is ImageFormat.pdf:
            raise ValueError("selector cannot be combined with format pdf")
        if self.selector is not None and self.full_page:
            raise ValueError("selector and full_page are mutually exclusive")
        return self


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


class JobError(BaseModel):
    """Why a job failed."""

    code: str = Field(examples=["timeout"])
    message: str
    status: int | None = Field(default=None, description="Upstream HTTP status, when relevant.")


class StoredResult(BaseModel):
    """A stored capture result, as recorded on the job (the download URL is minted per read)."""

    key: str
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None
    sha256: str


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
    api_key_id: str | None = Field(default=None, description="Owner; None in single-tenant mode.")
    webhook_url: str | None = None
    error: JobError | None = None
    result: StoredResult | None = None


def new_job_id() -> str:
    """A fresh, unguessable job id."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)



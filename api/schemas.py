"""Response bodies of the HTTP API (requests are :class:`shared.jobs.CaptureOptions`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.jobs import CaptureOptions, JobError, JobStatus


class Accepted(BaseModel):
    """Answer to a submitted capture."""

    id: str = Field(examples=["4f0c5c1e0b3a4d8f9a1c2b3d4e5f6a7b"])
    status: JobStatus = Field(examples=["queued"])
    status_url: str = Field(examples=["http://127.0.0.1:8000/v1/jobs/4f0c5c1e0b3a4d8f9a1c2b3d4e5f6a7b"])


class ResultView(BaseModel):
    """A succeeded job's result with a freshly minted, time-limited download URL."""

    url: str
    expires_at: datetime
    content_type: str = Field(examples=["image/png"])
    bytes: int
    width: int | None = None
    height: int | None = None
    sha256: str
    final_url: str | None = Field(default=None, description="Page URL after redirects.")
    http_status: int | None = Field(default=None, description="HTTP status of the page.")
    title: str | None = Field(default=None, description="The page's title.")
    blocked_requests: int = Field(default=0, description="Requests refused by blocking options.")


class JobView(BaseModel):
    """A job's status record as clients see it."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int
    error: JobError | None = None
    result: ResultView | None = None
    options: CaptureOptions


class JobList(BaseModel):
    """The caller's most recent jobs, newest first."""

    jobs: list[JobView]


class ErrorBody(BaseModel):
    """The one error shape of the whole API."""

    error: str = Field(examples=["validation_error"])
    message: str
    request_id: str | None = None
    details: list[dict[str, object]] | None = None

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
    cached: bool = Field(
        default=False,
        description="Answered by a stored capture (status succeeded) or sharing one in flight: no"
        " capture is charged.",
    )


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
    cached: bool = Field(default=False, description="Reused another job's capture at no cost.")
    batch_id: str | None = None


class ErrorBody(BaseModel):
    """The one error shape of the whole API."""

    error: str = Field(examples=["validation_error"])
    message: str
    request_id: str | None = None
    details: list[dict[str, object]] | None = None


class BatchAccepted(BaseModel):
    """Answer to a submitted batch."""

    id: str = Field(examples=["9c1e0b3a4d8f4f0c5c1e0b3a4d8f9a1c"])
    status_url: str
    total: int
    job_ids: list[str]


class BatchJobView(BaseModel):
    """One job of a batch, in brief (its status URL has the whole record)."""

    id: str
    url: str
    status: JobStatus | None = Field(description="None once the job's record has expired.")
    cached: bool = False
    error: JobError | None = None
    status_url: str


class BatchView(BaseModel):
    """A batch: counts per status and each job."""

    id: str
    created_at: datetime
    finished_at: datetime | None = None
    done: bool = Field(description="Every job has succeeded or failed.")
    total: int
    counts: dict[str, int] = Field(examples=[{"queued": 0, "running": 1, "succeeded": 2, "failed": 0}])
    webhook_url: str | None = None
    jobs: list[BatchJobView]

"""Response bodies of the HTTP API (requests are :class:`shared.jobs.ScreenshotRequest`; the job
and batch views live in :mod:`shared.job_view` and :mod:`shared.batch_view` because webhooks
send them too)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.batch_view import BatchJobView, BatchView
from shared.job_view import JobView, ResultView
from shared.jobs import JobStatus

__all__ = ["Accepted", "BatchJobView", "BatchView", "ErrorBody", "JobView", "ResultView"]


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


class JobList(BaseModel):
    """The caller's most recent jobs, newest first."""

    jobs: list[JobView]


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

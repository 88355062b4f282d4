"""Response bodies of the HTTP API (requests are :class:`shared.jobs.ScreenshotRequest`; the job
view lives in :mod:`shared.job_view` because webhooks send it too)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.job_view import JobView, ResultView
from shared.jobs import JobStatus

__all__ = ["Accepted", "ErrorBody", "JobView", "ResultView"]


class Accepted(BaseModel):
    """Answer to a submitted capture."""

    id: str = Field(examples=["4f0c5c1e0b3a4d8f9a1c2b3d4e5f6a7b"])
    status: JobStatus = Field(examples=["queued"])
    status_url: str = Field(examples=["http://127.0.0.1:8000/v1/jobs/4f0c5c1e0b3a4d8f9a1c2b3d4e5f6a7b"])


class ErrorBody(BaseModel):
    """The one error shape of the whole API."""

    error: str = Field(examples=["validation_error"])
    message: str
    request_id: str | None = None
    details: list[dict[str, object]] | None = None

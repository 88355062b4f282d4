"""A job as clients see it: the body of ``GET /v1/jobs/{id}`` and of webhook events.

Both the API and the webhook deliverer render jobs with :func:`render_job`, so a webhook's
``data`` is exactly what polling returns, with its own freshly signed download URL.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.jobs import CaptureOptions, Job, JobError, JobStatus, ResultMetadata
from shared.storage.base import Storage
from shared.storage.destinations import storage_for


class FileView(BaseModel):
    """Another file of a result (a scroll video's poster frame) with its download URL."""

    url: str
    expires_at: datetime
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None


class ResultView(ResultMetadata):
    """A succeeded job's result with a freshly minted, time-limited download URL."""

    url: str
    expires_at: datetime
    poster: FileView | None = Field(
        default=None, description="With thumbnail_width, a scroll video's first frame that wide.")


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
    result_expired_at: datetime | None = Field(
        default=None,
        description="Set when the retention period deleted the result: `GET .../result` then"
        " answers 410 gone.",
    )


def render_job(job: Job, storage: Storage, *, url_ttl_seconds: int) -> JobView:
    """The client-facing view of ``job``, with a fresh download URL when it succeeded."""
    result = None
    if job.result is not None and job.status is JobStatus.succeeded and job.result_expired_at is None:
        holder = storage_for(storage, job.result.destination)
        signed = holder.signed_url(job.result.key, expires_in=url_ttl_seconds)
        poster = None
        if job.result.poster is not None:
            signed_poster = holder.signed_url(job.result.poster.key, expires_in=url_ttl_seconds)
            poster = FileView(url=signed_poster.url, expires_at=signed_poster.expires_at,
                              **job.result.poster.model_dump(exclude={"key"}))
        result = ResultView(
            url=signed.url,
            expires_at=signed.expires_at,
            poster=poster,
            **job.result.model_dump(exclude={"key", "destination", "poster"}),
        )
    return JobView(
        id=job.id,
        status=job.status,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        error=job.error,
        result=result,
        options=job.options.redacted(),
        cached=job.cached,
        batch_id=job.batch_id,
        result_expired_at=job.result_expired_at,
    )

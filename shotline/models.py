"""The types the Python client speaks, owned by the client package (no server code).

- Requests: :class:`ScreenshotRequest` and :class:`CaptureOptions` are the wire contract
  itself (:mod:`shared.jobs`: plain pydantic, installed with the client), so what the client
  sends is validated exactly as the API validates it.
- Responses: the client's own models of the API's answers (:class:`Accepted`,
  :class:`JobView`, :class:`ResultView`, :class:`JobList`, :class:`ErrorBody`, batches).
  They keep fields a newer server adds (``extra="allow"``), so a server upgrade never breaks
  an older client; ``tests/test_client_package.py`` checks that they carry every field the
  API's response models declare.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from shared.jobs import CaptureOptions, ImageFormat, JobStatus, ScreenshotRequest, WaitUntil

__all__ = [
    "Accepted",
    "Batch",
    "BatchAccepted",
    "BatchJob",
    "CaptureOptions",
    "ErrorBody",
    "FileView",
    "ImageFormat",
    "JobError",
    "JobList",
    "JobStatus",
    "JobView",
    "ResultView",
    "Screenshot",
    "ScreenshotRequest",
    "WaitUntil",
]


class _Answer(BaseModel):
    """An API answer: fields this client does not know yet are kept as extras."""

    model_config = ConfigDict(extra="allow")


class Accepted(_Answer):
    """Answer to a submitted capture (``POST /v1/screenshots``)."""

    id: str
    status: JobStatus
    status_url: str
    cached: bool = False


class JobError(_Answer):
    """Why a job failed: ``code`` (e.g. ``timeout``), ``message``, upstream HTTP ``status``."""

    code: str
    message: str
    status: int | None = None


class FileView(_Answer):
    """Another file of a result (a scroll video's poster frame), with its download URL."""

    url: str
    expires_at: datetime
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None


class ResultView(_Answer):
    """A succeeded job's result, with its time-limited download URL."""

    url: str
    expires_at: datetime
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None
    sha256: str
    final_url: str | None = None
    http_status: int | None = None
    title: str | None = None
    blocked_requests: int = 0
    duration_ms: int | None = None
    poster: FileView | None = None


class JobView(_Answer):
    """A job as ``GET /v1/jobs/{id}`` answers it."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int
    error: JobError | None = None
    result: ResultView | None = None
    options: CaptureOptions
    cached: bool = False
    batch_id: str | None = None
    result_expired_at: datetime | None = None


class JobList(_Answer):
    """The caller's most recent jobs, newest first (``GET /v1/jobs``)."""

    jobs: list[JobView]


class ErrorBody(_Answer):
    """The API's one error shape."""

    error: str
    message: str
    request_id: str | None = None
    details: list[dict[str, object]] | None = None


_FINISHED = {JobStatus.succeeded.value, JobStatus.failed.value}


class BatchAccepted(BaseModel):
    """Answer to ``POST /v1/batches``: the batch id (``job_ids``, ``total``... kept as extras)."""

    model_config = ConfigDict(extra="allow")

    id: str


class BatchJob(BaseModel):
    """One job of a batch as ``GET /v1/batches/{id}`` lists it (other fields kept as extras)."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str | None = Field(default=None, description="None once the job's record expired.")


class Batch(BaseModel):
    """A batch: whether it is done, counts per status and its jobs (other fields as extras)."""

    model_config = ConfigDict(extra="allow")

    id: str
    done: bool | None = None
    status: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    jobs: list[BatchJob] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True once every job has succeeded or failed: the API's ``done`` when it says so,
        else read from the batch's status, counts or jobs."""
        if self.done is not None:
            return self.done
        if self.status is not None and self.status in _FINISHED | {"completed", "done"}:
            return True
        if self.counts:
            pending = self.counts.get(JobStatus.queued.value, 0) + self.counts.get(
                JobStatus.running.value, 0
            )
            return pending == 0 and sum(self.counts.values()) > 0
        return bool(self.jobs) and all(job.status in _FINISHED | {None} for job in self.jobs)


@dataclass(frozen=True, slots=True)
class Screenshot:
    """A finished capture: the job record and the downloaded bytes."""

    job: JobView
    content: bytes

    @property
    def content_type(self) -> str:
        """MIME type of :attr:`content`."""
        assert self.job.result is not None
        return self.job.result.content_type

    def save(self, path: str | Path) -> Path:
        """Write the picture (or PDF) to ``path``; returns the path."""
        target = Path(path)
        target.write_bytes(self.content)
        return target

"""The types the Python client speaks: the API's own request and response models, plus the
client-side shapes of batches and downloaded screenshots.

Requests and job records are the very classes the API validates and serialises
(:mod:`shared.jobs`, :mod:`api.schemas`; plain pydantic, no FastAPI), so the client and the
server cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Accepted, ErrorBody, JobList, JobView, ResultView
from shared.inputs import DocumentSummary, InputKind
from shared.jobs import CaptureOptions, ImageFormat, JobError, JobStatus, ScreenshotRequest, WaitUntil
from shared.page_outputs import ContentKind, ContentView, Icon, PageMetadata

__all__ = [
    "Accepted",
    "Batch",
    "BatchAccepted",
    "BatchJob",
    "CaptureOptions",
    "ContentKind",
    "ContentView",
    "DocumentSummary",
    "ErrorBody",
    "Icon",
    "ImageFormat",
    "InputKind",
    "JobError",
    "JobList",
    "JobStatus",
    "JobView",
    "PageMetadata",
    "ResultView",
    "Screenshot",
    "ScreenshotRequest",
    "WaitUntil",
]

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

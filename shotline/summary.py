"""Short human summaries of the API's answers, as ``shotline submit`` prints them."""

from __future__ import annotations

from shotline.models import Accepted, JobStatus, JobView


def describe_accepted(accepted: Accepted) -> str:
    """Two lines about a submitted capture: its id and state, and where to follow it."""
    if accepted.status is JobStatus.succeeded:
        head = f"Job {accepted.id} succeeded at once (answered from the result cache)."
    else:
        shared = " (sharing a capture already in flight)" if accepted.cached else ""
        head = f"Job {accepted.id} {accepted.status.value}{shared}."
    return f"{head}\n  status: {accepted.status_url}"


def describe_job(job: JobView) -> str:
    """A few lines about a finished (or still running) job: outcome, time, what it made."""
    took = ""
    if job.finished_at is not None:
        took = f" in {(job.finished_at - job.created_at).total_seconds():.1f} s"
    attempts = f", {job.attempts} attempts" if job.attempts > 1 else ""
    head = f"Job {job.id} {job.status.value}{took}{attempts}: {job.options.url}"
    if job.status is JobStatus.failed:
        error = f"{job.error.code}: {job.error.message}" if job.error else "no error recorded"
        return f"{head}\n  error: {error}"
    if job.result is None:
        return head
    result = job.result
    size = f" {result.width}x{result.height}" if result.width and result.height else ""
    return (f"{head}\n  result: {result.content_type}{size}, {result.bytes} bytes"
            f"\n  download: {result.url}")

"""What a webhook says: its event type, its stable id and its body."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum

from shared.job_view import JobView
from shared.jobs import JobStatus


class EventType(StrEnum):
    """The events Shotline sends."""

    job_succeeded = "job.succeeded"
    job_failed = "job.failed"


def event_for(status: JobStatus) -> EventType:
    """The event announcing that a job ended with ``status``; :class:`ValueError` if it did not."""
    if status is JobStatus.succeeded:
        return EventType.job_succeeded
    if status is JobStatus.failed:
        return EventType.job_failed
    raise ValueError(f"a {status.value} job has not ended")


def webhook_id(job_id: str, event: EventType) -> str:
    """The ``webhook-id`` of ``event`` for ``job_id``: the same on every attempt and every
    redelivery, so receivers can drop duplicates."""
    return f"msg_{job_id}_{event.value.replace('.', '_')}"


def event_body(event: EventType, job: JobView, *, occurred_at: datetime) -> bytes:
    """The JSON body ``{"type", "timestamp", "data"}``; ``data`` is ``GET /v1/jobs/{id}``'s record.

    ``timestamp`` is when the event happened (the job's end), not when it is sent.
    """
    document = {
        "type": event.value,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": job.model_dump(mode="json"),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

"""What a webhook says: its event type, its stable id and its body."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from shared.jobs import JobStatus


class EventType(StrEnum):
    """The events Shotline sends: ``<subject>.<what happened>``."""

    job_succeeded = "job.succeeded"
    job_failed = "job.failed"
    #: Every job of a batch has ended (each succeeded or failed); sent once per batch.
    batch_completed = "batch.completed"
    #: A monitor's run differs from its baseline (or, with notify_on "every", any good run).
    monitor_changed = "monitor.changed"
    #: A monitor's runs failed SHOTLINE_MONITOR_FAILURES_BEFORE_ALERT times in a row.
    monitor_failed = "monitor.failed"


def event_for(status: JobStatus) -> EventType:
    """The event announcing that a job ended with ``status``; :class:`ValueError` if it did not."""
    if status is JobStatus.succeeded:
        return EventType.job_succeeded
    if status is JobStatus.failed:
        return EventType.job_failed
    raise ValueError(f"a {status.value} job has not ended")


def webhook_id(record_id: str, event: EventType) -> str:
    """The ``webhook-id`` of ``event`` for the job or batch ``record_id``: the same on every
    attempt and every redelivery, so receivers can drop duplicates."""
    return f"msg_{record_id}_{event.value.replace('.', '_')}"


def event_body(event: EventType, record: BaseModel, *, occurred_at: datetime) -> bytes:
    """The JSON body ``{"type", "timestamp", "data"}``; ``data`` is what polling returns:
    ``GET /v1/jobs/{id}``'s record for job events, ``GET /v1/batches/{id}``'s for batch ones.

    ``timestamp`` is when the event happened (the job's or batch's end), not when it is sent.
    """
    document = {
        "type": event.value,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": record.model_dump(mode="json"),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

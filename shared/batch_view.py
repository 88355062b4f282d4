"""A batch as clients see it: the body of ``GET /v1/batches/{id}`` and of ``batch.completed``.

Both the API and the webhook deliverer render batches with :func:`render_batch`, so the
webhook's ``data`` is exactly what polling returns. Only the jobs' status URLs depend on
where the batch is rendered: the API builds them from the request, the deliverer from
``SHOTLINE_PUBLIC_BASE_URL`` (as it does download URLs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from shared.jobs import JobError, JobStatus

if TYPE_CHECKING:  # the SDK imports these views; it must not pull in redis
    from shared.batches import Batch, BatchStore


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


def count_statuses(states: list[dict[str, Any]]) -> dict[str, int]:
    """How many jobs are in each status (every status listed, zeros included)."""
    counts = Counter(state["status"] for state in states)
    return {status.value: counts.get(status.value, 0) for status in JobStatus}


def job_status_url(public_base_url: str) -> Callable[[str], str]:
    """Status URLs of jobs under ``public_base_url`` (for renderings outside a request)."""
    base = public_base_url.rstrip("/")
    return lambda job_id: f"{base}/v1/jobs/{job_id}"


async def render_batch(batches: BatchStore, batch: Batch, *,
                       status_url: Callable[[str], str]) -> BatchView:
    """The client-facing view of ``batch``: counts per status and each job in brief."""
    states = await batches.job_states(batch)
    return BatchView(
        id=batch.id, created_at=batch.created_at, finished_at=batch.finished_at,
        done=batch.finished_at is not None, total=len(states), counts=count_statuses(states),
        webhook_url=batch.webhook_url,
        jobs=[BatchJobView(**state, status_url=status_url(state["id"])) for state in states],
    )

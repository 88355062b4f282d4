"""Batches: submit many captures with shared options, then follow them together."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from api.auth import Principal
from api.schemas import BatchJobView, BatchView
from api.services import Services, submit_capture
from shared.batches import Batch, BatchRequest, count_statuses, new_batch_id
from shared.errors import BatchNotFound, QuotaExceeded, UrlBlocked
from shared.jobs import Job, JobError, JobStatus, new_job_id, utcnow

log = structlog.get_logger("shotline.api")


async def submit_batch(services: Services, request: BatchRequest, *, principal: Principal,
                       request_id: str | None) -> Batch:
    """Record the batch, then submit each URL. A URL refused by the URL policy or over the
    quota becomes a failed job of the batch; it does not stop the others."""
    requests = request.requests()
    batch = Batch(id=new_batch_id(), created_at=utcnow(), api_key_id=principal.key_id,
                  webhook_url=request.webhook_url, job_ids=[new_job_id() for _ in requests],
                  urls=[r.url for r in requests])
    await services.batches.create(batch)
    for job_id, capture in zip(batch.job_ids, requests, strict=True):
        try:
            await submit_capture(services, capture, principal=principal, request_id=request_id,
                                 job_id=job_id, batch_id=batch.id)
        except (UrlBlocked, QuotaExceeded) as exc:
            job = Job(id=job_id, status=JobStatus.failed, created_at=utcnow(),
                      finished_at=utcnow(), options=capture.capture_options(),
                      request_id=request_id, api_key_id=principal.key_id, batch_id=batch.id,
                      error=JobError(code=exc.code, message=exc.message))
            await services.store.create(job)
            await services.completion.settled(job)
    log.info("batch submitted", batch_id=batch.id, jobs=len(batch.job_ids),
             api_key_id=principal.key_id, request_id=request_id)
    return batch


async def batch_view(services: Services, principal: Principal, batch_id: str,
                     status_url: Callable[[str], str]) -> BatchView:
    """The batch with counts per status and each job (another key's batch: not found)."""
    batch = await services.batches.get(batch_id)
    if batch.api_key_id != principal.key_id:
        raise BatchNotFound(f"no batch with id {batch_id!r}")
    states = await services.batches.job_states(batch)
    return BatchView(
        id=batch.id, created_at=batch.created_at, finished_at=batch.finished_at,
        done=batch.finished_at is not None, total=len(states), counts=count_statuses(states),
        webhook_url=batch.webhook_url,
        jobs=[BatchJobView(**state, status_url=status_url(state["id"])) for state in states],
    )

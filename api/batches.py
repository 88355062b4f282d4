"""Batches: submit many captures with shared options, then follow them together."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from api.deliveries import read_delivery_log, send_again
from api.services import Services, check_webhook, submit_capture
from shared.batch_view import BatchView, render_batch
from shared.batches import Batch, BatchRequest, new_batch_id
from shared.errors import BatchNotFinished, BatchNotFound, NoWebhook, QuotaExceeded, UrlBlocked
from shared.jobs import Job, JobError, JobStatus, new_job_id, utcnow
from shared.principal import Principal
from shared.webhooks.delivery import open_batch_delivery
from shared.webhooks.models import BatchDeliveryLog
from shared.webhooks.subjects import batch_subject

log = structlog.get_logger("shotline.api")


async def submit_batch(services: Services, request: BatchRequest, *, principal: Principal,
                       request_id: str | None) -> Batch:
    """Record the batch, then submit each URL. A URL refused by the URL policy or over the
    quota becomes a failed job of the batch; it does not stop the others. A refused
    ``webhook_url`` (or one no secret can sign) refuses the whole batch (422)."""
    requests = request.requests()
    webhook_url = None
    if request.webhook_url is not None:
        # Checked like a job's: the URL policy, and a secret to sign with (422 otherwise).
        webhook_url = await check_webhook(services, request.webhook_url,
                                          api_key_id=principal.key_id)
    batch = Batch(id=new_batch_id(), created_at=utcnow(), api_key_id=principal.key_id,
                  webhook_url=webhook_url, job_ids=[new_job_id() for _ in requests],
                  urls=[r.url or "" for r in requests])
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


async def get_owned_batch(services: Services, principal: Principal, batch_id: str) -> Batch:
    """``batch_id`` if ``principal`` owns it (:class:`BatchNotFound` otherwise: another key's
    batch does not exist for this caller)."""
    batch = await services.batches.get(batch_id)
    if batch.api_key_id != principal.key_id:
        raise BatchNotFound(f"no batch with id {batch_id!r}")
    return batch


async def batch_view(services: Services, principal: Principal, batch_id: str,
                     status_url: Callable[[str], str]) -> BatchView:
    """The batch with counts per status and each job (another key's batch: not found)."""
    batch = await get_owned_batch(services, principal, batch_id)
    return await render_batch(services.batches, batch, status_url=status_url)


async def batch_delivery_log(services: Services, principal: Principal,
                             batch_id: str) -> BatchDeliveryLog:
    """The state of ``batch_id``'s ``batch.completed`` webhook and every attempt so far."""
    batch = await get_owned_batch(services, principal, batch_id)
    return await read_delivery_log(services, batch_subject(batch.id), batch.webhook_url,
                                   BatchDeliveryLog, batch_id=batch.id)


async def redeliver_batch(services: Services, principal: Principal,
                          batch_id: str) -> BatchDeliveryLog:
    """Send ``batch_id``'s ``batch.completed`` again now (same ``webhook-id``), like a job's.

    Raises :class:`NoWebhook` or :class:`BatchNotFinished` (409) when there is nothing to send.
    """
    batch = await get_owned_batch(services, principal, batch_id)
    if batch.webhook_url is None:
        raise NoWebhook(f"batch {batch_id} has no webhook_url; there is nothing to redeliver")
    if batch.finished_at is None:
        raise BatchNotFinished(f"batch {batch_id} has jobs still running; its webhook is sent"
                               " when the last one ends")
    subject, url = batch_subject(batch.id), batch.webhook_url
    return await send_again(
        services, subject,
        lambda due, now: open_batch_delivery(services.deliveries, batch, due=due, now=now),
        lambda: read_delivery_log(services, subject, url, BatchDeliveryLog, batch_id=batch.id),
        owner=batch.api_key_id, url=url)

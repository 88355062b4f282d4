"""What the webhook delivery routes call: a job's (or batch's) delivery log, and redelivery.

Free of HTTP details, like :mod:`api.services`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.to_thread
import structlog

from api.services import Services, get_owned_job
from shared.errors import JobNotFinished, NoWebhook
from shared.principal import Principal
from shared.queue import enqueue_delivery
from shared.webhooks.delivery import open_delivery
from shared.webhooks.models import DeliveryLog, DeliveryLogBase, DeliveryState
from shared.webhooks.retry import utc_from_timestamp

#: A redelivery whose task is lost comes due again after this many seconds.
REDELIVERY_LEASE_SECONDS = 300.0

log = structlog.get_logger("shotline.api")

LogT = TypeVar("LogT", bound=DeliveryLogBase)


async def delivery_log(services: Services, principal: Principal, job_id: str) -> DeliveryLog:
    """The state of ``job_id``'s webhook and every attempt so far (the caller's jobs only)."""
    job = await get_owned_job(services, principal, job_id)
    return await read_delivery_log(services, job.id, job.webhook_url, DeliveryLog, job_id=job.id)


async def read_delivery_log(services: Services, subject: str, webhook_url: str | None,
                            log_type: type[LogT], **identity: str) -> LogT:
    """The ``log_type`` of ``subject``'s delivery (``identity`` names its job or batch)."""
    fields: dict[str, object] = {**identity, "webhook_url": webhook_url}
    if webhook_url is None:
        fields["state"] = DeliveryState.none
        return log_type.model_validate(fields)
    delivery = await services.deliveries.get(subject)
    fields["attempts"] = await services.deliveries.attempts(subject)
    if delivery is None:
        fields["state"] = DeliveryState.waiting
        return log_type.model_validate(fields)
    next_at = delivery.next_attempt_at if delivery.state is DeliveryState.scheduled else None
    fields.update(
        webhook_url=delivery.url, event=delivery.event, webhook_id=delivery.webhook_id,
        state=delivery.state, next_attempt_at=None if next_at is None else utc_from_timestamp(next_at),
    )
    return log_type.model_validate(fields)


async def redeliver(services: Services, principal: Principal, job_id: str) -> DeliveryLog:
    """Send ``job_id``'s event again now, with a fresh retry schedule (same ``webhook-id``).

    Lifts a 410 disabling of the endpoint: asking for a redelivery says it is back.
    Raises :class:`NoWebhook` or :class:`JobNotFinished` (409) when there is nothing to send.
    """
    job = await get_owned_job(services, principal, job_id)
    if job.webhook_url is None:
        raise NoWebhook(f"job {job_id} has no webhook_url; there is nothing to redeliver")
    if not job.status.is_terminal:
        raise JobNotFinished(f"job {job_id} is {job.status.value}; its webhook is sent when it ends")
    url = job.webhook_url
    return await send_again(
        services, job.id,
        lambda due, now: open_delivery(services.deliveries, job, due=due, now=now),
        lambda: read_delivery_log(services, job.id, url, DeliveryLog, job_id=job.id),
        owner=job.api_key_id, url=url)


async def send_again(services: Services, subject: str,
                     open_: Callable[[float, float], Awaitable[bool]],
                     read_log: Callable[[], Awaitable[LogT]], *,
                     owner: str | None, url: str) -> LogT:
    """Start a new round of ``subject``'s delivery now (``open_`` creates it if it never
    was), enable its endpoint again and send its task (or leave it to the dispatcher).

    Returns ``read_log()`` as the redelivery was accepted (``scheduled``): read before the
    task is sent, so the answer does not depend on how fast a webhook worker delivers it.
    """
    now = time.time()
    due_if_lost = now + REDELIVERY_LEASE_SECONDS
    if not await open_(due_if_lost, now):
        await services.deliveries.restart(subject, now=now, due=due_if_lost)
    if await services.deliveries.enable_endpoint(owner, url):
        log.info("webhook endpoint enabled again", subject=subject, url=url)
    accepted = await read_log()
    try:
        await anyio.to_thread.run_sync(functools.partial(enqueue_delivery, services.celery, subject))
    except Exception as exc:  # the worker-side dispatcher picks it up instead
        log.warning("could not enqueue a redelivery; left to the dispatcher", subject=subject,
                    error=str(exc))
        await services.deliveries.set_due(subject, at=now)
    log.info("webhook redelivery requested", subject=subject, url=url)
    return accepted

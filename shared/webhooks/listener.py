"""Schedules a finished job's webhook delivery (used by the worker and the API alike)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from shared.jobs import Job
from shared.webhooks.delivery import open_delivery
from shared.webhooks.store import DeliveryStore

log = structlog.get_logger("shotline.webhooks")

#: An enqueued or claimed delivery comes due again after this many seconds unless its
#: attempt records an outcome first (the task was lost with its worker).
LEASE_SECONDS = 300.0
Enqueue = Callable[[str], None]


class WebhookListener:
    """A job hook (see :class:`shared.completion.Completion`): schedules the finished job's webhook.

    Idempotent: a second call for the same job (a redelivered capture task) finds the
    delivery recorded and enqueues nothing.
    """

    def __init__(self, deliveries: DeliveryStore, *, enqueue: Enqueue | None,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.deliveries = deliveries
        self.enqueue = enqueue
        self.lease_seconds = lease_seconds

    async def job_finished(self, job: Job) -> None:
        """Record ``job``'s delivery and send its task (or leave it to the dispatcher)."""
        if job.webhook_url is None:
            return
        now = time.time()
        # With a task sent right away, the due entry is only the safety net for a lost task.
        due = now + self.lease_seconds if self.enqueue is not None else now
        if not await open_delivery(self.deliveries, job, due=due, now=now):
            return
        if self.enqueue is None:
            return
        try:
            await asyncio.to_thread(self.enqueue, job.id)
        except Exception as exc:
            log.warning("could not enqueue a webhook delivery; the dispatcher will",
                        job_id=job.id, error=str(exc))
            await self.deliveries.set_due(job.id, at=now)

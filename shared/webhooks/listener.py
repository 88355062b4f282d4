"""Schedules finished jobs' and batches' webhook deliveries (used by the worker and the API alike)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from shared.batches import Batch
from shared.jobs import Job
from shared.webhooks.delivery import open_batch_delivery, open_delivery
from shared.webhooks.store import DeliveryStore
from shared.webhooks.subjects import batch_subject

log = structlog.get_logger("shotline.webhooks")

#: An enqueued or claimed delivery comes due again after this many seconds unless its
#: attempt records an outcome first (the task was lost with its worker).
LEASE_SECONDS = 300.0
#: Sends the delivery task of a subject (a job id or ``batch:<id>``).
Enqueue = Callable[[str], None]


class WebhookListener:
    """A job hook and a batch hook (see :class:`shared.completion.Completion`): schedules
    the webhook of a finished job, and the ``batch.completed`` of a finished batch.

    Idempotent: a second call for the same job or batch (a redelivered capture task) finds
    the delivery recorded and enqueues nothing.
    """

    def __init__(self, deliveries: DeliveryStore, *, enqueue: Enqueue | None,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.deliveries = deliveries
        self.enqueue = enqueue
        self.lease_seconds = lease_seconds

    async def job_finished(self, job: Job) -> None:
        """Record ``job``'s delivery and send its task (or leave it to the dispatcher)."""
        if job.webhook_url is not None:
            await self._schedule(job.id, lambda due, now: open_delivery(
                self.deliveries, job, due=due, now=now))

    async def batch_finished(self, batch: Batch) -> None:
        """Record ``batch``'s ``batch.completed`` delivery and send its task."""
        if batch.webhook_url is not None:
            await self._schedule(batch_subject(batch.id), lambda due, now: open_batch_delivery(
                self.deliveries, batch, due=due, now=now))

    async def schedule(self, subject: str,
                       open_: Callable[[float, float], Awaitable[bool]]) -> None:
        """Record a delivery with ``open_(due, now)`` (any subject: a monitor's event...)
        and send its task, like a job's."""
        await self._schedule(subject, open_)

    async def _schedule(self, subject: str,
                        open_: Callable[[float, float], Awaitable[bool]]) -> None:
        now = time.time()
        # With a task sent right away, the due entry is only the safety net for a lost task.
        due = now + self.lease_seconds if self.enqueue is not None else now
        if not await open_(due, now):
            return
        if self.enqueue is None:
            return
        try:
            await asyncio.to_thread(self.enqueue, subject)
        except Exception as exc:
            log.warning("could not enqueue a webhook delivery; the dispatcher will",
                        subject=subject, error=str(exc))
            await self.deliveries.set_due(subject, at=now)

"""Celery tasks: thin wrappers that decode arguments and call the pipeline or the deliverer."""

from __future__ import annotations

import concurrent.futures
import functools
from typing import Any

from celery import Task
from celery.exceptions import Reject

from shared.constants import CAPTURE_TASK, WEBHOOK_TASK
from shared.errors import StoreUnavailable
from shared.queue import (
    SLOT_RETRY_COUNTDOWN_SECONDS,
    ShotlineCelery,
    enqueue_delivery,
    task_countdown,
)
from shared.webhooks.delivery import attempt_delivery
from worker.pipeline import run_capture_job
from worker.runtime import get_runtime
from worker.webhooks import get_webhook_runtime


def register_tasks(app: ShotlineCelery) -> None:
    """Register Shotline's tasks on ``app``."""

    @app.task(bind=True, name=CAPTURE_TASK, max_retries=None)
    def capture(self: Task[Any, Any], job_id: str) -> None:
        """Capture ``job_id``; retryable failures come back after the pipeline's delay.

        Idempotent: a redelivered task of a finished job does nothing, a repeated capture
        writes the same storage key. A job waiting for a fleet slot comes back shortly,
        and so does one whose status Redis is unreachable (the job is never failed for it).
        """
        runtime = get_runtime(app.settings, enqueue_delivery=functools.partial(enqueue_delivery, app))
        try:
            outcome = runtime.run(run_capture_job(job_id, runtime.deps))
        except StoreUnavailable as exc:
            raise self.retry(countdown=SLOT_RETRY_COUNTDOWN_SECONDS, exc=exc) from exc
        except concurrent.futures.CancelledError as exc:
            # The worker is shutting down (threads pool): the capture was cancelled, its
            # job stays running; the message goes back to the queue, never acknowledged.
            raise Reject(exc, requeue=True) from exc
        if outcome.retry_in is not None:
            raise self.retry(countdown=task_countdown(outcome.retry_in))

    @app.task(name=WEBHOOK_TASK, max_retries=0)
    def deliver_webhook(subject: str) -> None:
        """Make the due attempt of ``subject``'s webhook delivery (a job id, or
        ``batch:<id>``). Retries are scheduled in Redis by the attempt itself, never with
        Celery countdowns."""
        runtime = get_webhook_runtime(app.settings)
        runtime.run(attempt_delivery(subject, runtime.deps))

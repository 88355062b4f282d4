"""Celery tasks: thin wrappers that decode arguments and call the capture pipeline."""

from __future__ import annotations

from typing import Any

from celery import Task

from shared.constants import CAPTURE_TASK
from shared.queue import ShotlineCelery
from worker.pipeline import run_capture_job
from worker.runtime import get_runtime


def register_tasks(app: ShotlineCelery) -> None:
    """Register Shotline's tasks on ``app``."""

    @app.task(bind=True, name=CAPTURE_TASK, max_retries=None)
    def capture(self: Task[Any, Any], job_id: str) -> None:
        """Capture ``job_id``; retryable failures come back after the pipeline's delay."""
        runtime = get_runtime(app.settings)
        outcome = runtime.run(run_capture_job(job_id, runtime.deps))
        if outcome.retry_in is not None:
            raise self.retry(countdown=outcome.retry_in)

"""Entry point of the Celery worker: ``celery -A worker.app worker``.

Builds the settings once, configures logging, and registers the tasks.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from shared.logging import configure_logging
from shared.queue import make_celery
from shared.settings import get_settings
from worker.runtime import close_runtime
from worker.tasks import register_tasks

settings = get_settings()
app = make_celery(settings)
register_tasks(app)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(level=settings.log_level, fmt=settings.log_format)


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    close_runtime()

"""Entry point of the Celery worker: ``celery -A worker.app worker``.

Builds the settings once, configures logging, and registers the tasks.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import signals

from shared.constants import WEBHOOK_QUEUE
from shared.logging import configure_logging
from shared.queue import enqueue_delivery, make_celery
from shared.settings import get_settings
from worker.runtime import close_runtime
from worker.tasks import register_tasks
from worker.webhooks import close_webhook_runtime, get_webhook_runtime

settings = get_settings()
app = make_celery(settings)
register_tasks(app)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(level=settings.log_level, fmt=settings.log_format)


@signals.worker_ready.connect
def _start_webhook_dispatcher(**_: Any) -> None:
    # Every worker consuming the webhook queue runs a dispatcher; claims are atomic.
    if WEBHOOK_QUEUE in app.amqp.queues.consume_from:
        get_webhook_runtime(settings).start_dispatcher(functools.partial(enqueue_delivery, app))


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    close_runtime()
    close_webhook_runtime()

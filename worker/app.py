"""Entry point of the Celery worker: ``celery -A worker.app worker``.

Builds the settings once, configures logging, and registers the tasks. The worker's main
process also runs the sweeper (:mod:`worker.sweeper`) and bounds a warm shutdown
(:mod:`worker.shutdown`); its pool processes close their browser when they end.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from shared.logging import configure_logging
from shared.queue import make_celery
from shared.settings import get_settings
from worker.runtime import close_runtime
from worker.shutdown import bound_warm_shutdown
from worker.sweeper import SweeperThread, sweeper_thread
from worker.tasks import register_tasks

settings = get_settings()
app = make_celery(settings)
register_tasks(app)

_sweeper: SweeperThread | None = None


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(level=settings.log_level, fmt=settings.log_format)


@signals.worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    global _sweeper
    if settings.sweeper and _sweeper is None:
        _sweeper = sweeper_thread(settings)
        _sweeper.start()


@signals.worker_shutting_down.connect
def _bound_shutdown(how: str = "", **_: Any) -> None:
    if how == "Warm":
        bound_warm_shutdown(settings.shutdown_timeout_seconds)


@signals.worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    global _sweeper
    if _sweeper is not None:
        sweeper, _sweeper = _sweeper, None
        sweeper.stop()


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    close_runtime()

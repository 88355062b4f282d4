"""Entry point of the Celery worker: ``celery -A worker.app worker``.

Builds the settings once, configures logging, registers the tasks, binds each task's
correlation (request id, trace context) to its log lines and, with
``SHOTLINE_WORKER_METRICS_PORT`` set, serves the pool's Prometheus metrics. The worker's main
process also runs the sweeper (:mod:`worker.sweeper`), the fair queue's dispatcher
(:mod:`worker.dispatcher`, when it consumes the capture queue) and bounds a warm shutdown
(:mod:`worker.shutdown`); its pool processes close their browser when they end.
"""

# ruff: noqa: E402  (the metrics directory must be set before the imports below)

from __future__ import annotations

from shared.settings import get_settings
from worker.metrics_dir import prepare_metrics_dir, remove_metrics_dir

settings = get_settings()
# prometheus_client chooses in-memory or per-process file values when first imported,
# which the imports below do: the pool's metrics directory is set before them.
metrics_dir = prepare_metrics_dir(settings)

import functools
from typing import Any

from celery import Task, signals

from shared.constants import CAPTURE_QUEUE, WEBHOOK_QUEUE
from shared.correlation import bind_task_context, unbind_task_context
from shared.logging import configure_logging
from shared.queue import enqueue_delivery, make_celery
from worker.background import BackgroundLoop
from worker.dispatcher import dispatcher_thread
from worker.exporter import WorkerExporter, pool_child_started, pool_child_stopping, start_exporter
from worker.monitor_scheduler import monitor_scheduler_thread
from worker.retention import retention_thread
from worker.runtime import cancel_captures, close_runtime
from worker.shutdown import bound_warm_shutdown, cancel_then_cold_shutdown, leave_process_group
from worker.sweeper import sweeper_thread
from worker.tasks import register_tasks
from worker.webhooks import close_webhook_runtime, get_webhook_runtime

app = make_celery(settings)
# Survives a Redis broker's blip with its running tasks (worker.consumer).
app.conf.worker_consumer = "worker.consumer:BlipTolerantConsumer"
register_tasks(app)
_exporter: WorkerExporter | None = None

_sweeper: BackgroundLoop | None = None
_dispatcher: BackgroundLoop | None = None
_retention: BackgroundLoop | None = None
_monitor_scheduler: BackgroundLoop | None = None


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(level=settings.log_level, fmt=settings.log_format)


@signals.worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    global _sweeper
    if settings.sweeper and _sweeper is None:
        _sweeper = sweeper_thread(settings)
        _sweeper.start()
    global _retention
    if settings.sweeper and _retention is None:
        _retention = retention_thread(settings)
        _retention.start()


@signals.worker_ready.connect
def _start_dispatcher(**_: Any) -> None:
    # Every capture worker releases waiting captures into the queue, fairly between API
    # keys (worker.dispatcher); claims are atomic, so any number may run.
    global _dispatcher
    if CAPTURE_QUEUE in app.amqp.queues.consume_from and _dispatcher is None:
        _dispatcher = dispatcher_thread(settings)
        _dispatcher.start()


@signals.worker_ready.connect
def _start_monitor_scheduler(**_: Any) -> None:
    # Monitors' due slots become capture jobs (worker.monitor_scheduler); claims are atomic.
    global _monitor_scheduler
    if (settings.monitor_scheduler and CAPTURE_QUEUE in app.amqp.queues.consume_from
            and _monitor_scheduler is None):
        _monitor_scheduler = monitor_scheduler_thread(settings)
        _monitor_scheduler.start()


@signals.worker_shutdown.connect
def _stop_monitor_scheduler(**_: Any) -> None:
    global _monitor_scheduler
    if _monitor_scheduler is not None:
        scheduler, _monitor_scheduler = _monitor_scheduler, None
        scheduler.stop()


@signals.worker_ready.connect
def _start_webhook_dispatcher(**_: Any) -> None:
    # Every worker consuming the webhook queue runs a dispatcher; claims are atomic.
    if WEBHOOK_QUEUE in app.amqp.queues.consume_from:
        get_webhook_runtime(settings).start_dispatcher(functools.partial(enqueue_delivery, app))


@signals.worker_shutting_down.connect
def _bound_shutdown(how: str = "", **_: Any) -> None:
    if how == "Warm":
        bound_warm_shutdown(settings.shutdown_timeout_seconds,
                            escalate=cancel_then_cold_shutdown(cancel_captures))


@signals.worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    global _sweeper, _dispatcher, _retention
    if _retention is not None:
        retention, _retention = _retention, None
        retention.stop()
    if _sweeper is not None:
        sweeper, _sweeper = _sweeper, None
        sweeper.stop()
    if _dispatcher is not None:
        dispatcher, _dispatcher = _dispatcher, None
        dispatcher.stop()


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    close_runtime()
    close_webhook_runtime()


@signals.task_prerun.connect
def _bind_log_context(task: Task[Any, Any], **_: Any) -> None:
    # The request id and trace context the API put in the task's headers, for every line
    # logged while the task runs.
    bind_task_context(task.request)


@signals.task_postrun.connect
def _clear_log_context(**_: Any) -> None:
    unbind_task_context()


@signals.worker_ready.connect
def _start_exporter(**_: Any) -> None:
    # Once logging is set up and the pool has started (its children need no copy of the
    # listening socket).
    global _exporter
    if metrics_dir is not None:
        _exporter = start_exporter(settings, metrics_dir)


@signals.worker_process_init.connect
def _leave_process_group(**_: Any) -> None:
    # A SIGTERM to the whole group is the main process's to act on (worker.shutdown).
    leave_process_group()


@signals.worker_process_init.connect
def _count_pool_child(**_: Any) -> None:
    if metrics_dir is not None:
        pool_child_started()


@signals.worker_process_shutdown.connect
def _forget_pool_child(**_: Any) -> None:
    if metrics_dir is not None:
        pool_child_stopping()


@signals.worker_shutdown.connect
def _stop_exporter(**_: Any) -> None:
    if _exporter is not None:
        _exporter.close()
    if metrics_dir is not None:
        remove_metrics_dir(metrics_dir)

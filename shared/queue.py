"""The Celery app's configuration and the producer side of the capture queue.

Both the API (producer only) and the workers build their Celery app with
:func:`make_celery`, so broker options can never drift apart. The API sends tasks by name
and never imports worker code.
"""

from __future__ import annotations

import math
import os
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from shared.constants import CAPTURE_QUEUE, CAPTURE_TASK, WEBHOOK_QUEUE, WEBHOOK_TASK
from shared.correlation import task_headers
from shared.errors import ConfigurationError
from shared.settings import Settings

#: Longest capture a request may ask for (CaptureOptions.timeout_ms upper bound), in seconds.
MAX_CAPTURE_SECONDS = 60
#: Longest delay before a capture retry; always far below the visibility timeout.
MAX_RETRY_DELAY_SECONDS = 60
#: Broker URL schemes that mean RabbitMQ (AMQP 0-9-1).
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
#: Hard limit of one task run: a capture enforces its own timeout, this only catches a
#: wedged process (it is killed and the sweeper recovers its job).
TASK_TIME_LIMIT_SECONDS = MAX_CAPTURE_SECONDS + 60
#: Countdown of a task that found no free fleet slot (SnapAPI semaphore) and goes back to wait.
SLOT_RETRY_COUNTDOWN_SECONDS = 1.0
#: The visibility timeout production needs: the longest countdown plus the longest run, plus
#: a margin for slot waits and storage.
RECOMMENDED_VISIBILITY_TIMEOUT_SECONDS = MAX_RETRY_DELAY_SECONDS + TASK_TIME_LIMIT_SECONDS + 60


def max_countdown(settings: Settings) -> float:
    """The longest countdown any task may be (re)sent with: a quarter of the visibility timeout.

    The invariant that keeps Redis from delivering a task twice or forever: a message
    stays unacknowledged from delivery until its task ends, i.e. for its countdown plus its
    run. A countdown longer than the visibility timeout would loop (the message comes back
    while the worker still holds it), so delays beyond this limit do not use countdowns:
    the job is parked in the status store and the sweeper enqueues it when it is due
    (:meth:`shared.status_store.StatusStore.mark_retrying` with ``park``). Runs longer than
    the rest of the timeout may be delivered twice, which capture tasks tolerate (same
    storage key, one final status); the default timeout (600 s) is above
    :data:`RECOMMENDED_VISIBILITY_TIMEOUT_SECONDS` so that this does not happen at all.
    """
    return settings.visibility_timeout_seconds / 4


def task_countdown(delay: float) -> int:
    """The countdown to (re)send a task with after ``delay`` seconds: whole seconds, rounded up.

    RabbitMQ's native delayed delivery (quorum queues) routes a delayed message by its
    countdown in whole seconds: Celery truncates a fractional countdown and refuses one under
    a second, and a refused ``Task.retry`` is rejected without requeue, so the message was
    dropped and its job stayed queued for good (full-jitter backoffs draw such delays often).
    Rounding up never retries earlier than asked; a zero delay stays zero (sent at once).
    """
    return max(0, math.ceil(delay))


def check_delivery_invariant(settings: Settings) -> None:
    """Refuse settings under which a countdown the code uses could outlive the visibility timeout.

    Raises:
        ConfigurationError: the visibility timeout is too short for the shortest countdown.
    """
    if max_countdown(settings) < SLOT_RETRY_COUNTDOWN_SECONDS:
        raise ConfigurationError(
            f"SHOTLINE_VISIBILITY_TIMEOUT_SECONDS={settings.visibility_timeout_seconds} is too"
            f" short: it must be at least {4 * SLOT_RETRY_COUNTDOWN_SECONDS:g} seconds"
            f" ({RECOMMENDED_VISIBILITY_TIMEOUT_SECONDS} recommended)"
        )


class ShotlineCelery(Celery):
    """A Celery app that carries the :class:`Settings` it was built from."""

    settings: Settings


def make_celery(settings: Settings) -> ShotlineCelery:
    """A Celery app configured for at-least-once delivery without loss.

    Late acks plus reject-on-worker-lost mean a task whose worker dies is redelivered;
    prefetch 1 keeps one slow capture from holding queued jobs hostage. Workers reconnect
    forever, and a dead worker's messages come back after the visibility timeout (see
    :func:`max_countdown` for the invariant that timeout must keep). When a worker loses
    its broker connection, RabbitMQ redelivers the running tasks' messages at once, so the
    worker cancels those tasks (they would run twice); Redis keeps them unacknowledged
    until the visibility timeout, so the tasks run on and acknowledge when Redis is back
    (:mod:`worker.consumer`).

    Raises:
        ConfigurationError: the settings break :func:`check_delivery_invariant`.
    """
    check_delivery_invariant(settings)
    app = ShotlineCelery("shotline", broker=settings.effective_broker_url, set_as_current=False)
    visibility = settings.visibility_timeout_seconds
    transport_options: dict[str, Any] = {
        "visibility_timeout": visibility,
        # kombu looks for messages of dead workers every interval x throttle seconds (100 s
        # by default); scan every visibility/10 seconds (at most 10) so that recovery
        # takes about the visibility timeout, not minutes more.
        "unacked_restore_interval": min(10.0, max(1.0, visibility / 10)),
        "unacked_restore_throttle": 1,
        # The restore lock of a worker killed mid-scan blocks restores until it expires.
        "unacked_mutex_expire": min(300, visibility),
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "health_check_interval": 10,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        # Workers keep reconnecting however long Redis is away (the default gives up after 100).
        broker_connection_max_retries=None,
        broker_transport_options=transport_options,
        task_default_queue=CAPTURE_QUEUE,
        task_routes={CAPTURE_TASK: {"queue": CAPTURE_QUEUE},
                     WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE}},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        task_time_limit=TASK_TIME_LIMIT_SECONDS,
        # The pool is chosen on the command line (`shotline worker` passes the setting's):
        # Celery cannot tell an explicit `--pool prefork` from its default, so a configured
        # worker_pool would override it. A bare `celery worker` runs prefork.
        worker_concurrency=settings.worker_concurrency or os.cpu_count() or 2,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    if is_amqp(settings.effective_broker_url):
        app.conf.update(amqp_options())
    app.settings = settings
    return app


def is_amqp(broker_url: str) -> bool:
    """True when ``broker_url`` names a RabbitMQ broker."""
    return broker_url.split("://", 1)[0].lower() in AMQP_SCHEMES


def amqp_options() -> dict[str, Any]:
    """Celery settings for RabbitMQ: stronger guarantees than Redis offers.

    Publisher confirms (a submit returns only once the broker has the message) and quorum
    queues (replicated, durable, redelivered to another consumer when a worker dies, with no
    visibility timeout to tune). Their exchanges are topic exchanges, which Celery's native
    delayed delivery needs to route countdown retries through RabbitMQ instead of holding
    them in the worker.
    """
    queues = [
        Queue(name, Exchange(name, type="topic"), routing_key=name,  # type: ignore[no-untyped-call]
              queue_arguments={"x-queue-type": "quorum"})
        for name in (CAPTURE_QUEUE, WEBHOOK_QUEUE)
    ]
    return {
        # RabbitMQ redelivers a lost connection's unacknowledged messages at once.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_transport_options": {"confirm_publish": True},
        "task_queues": queues,
        "task_default_exchange_type": "topic",
    }


def enqueue_capture(app: Celery, job_id: str, *, request_id: str | None,
                    traceparent: str | None = None, producer: Any = None) -> None:
    """Send the capture task for ``job_id`` (blocking; call it from a thread in async code).

    The task's headers carry ``request_id`` and the trace context (``traceparent``, else
    the caller's) to the worker. New captures reach Celery through the fair queue's
    dispatcher (:mod:`shared.fair_queue`); retries and recoveries are sent directly.
    ``producer`` (from ``app.producer_or_acquire()``) sends several tasks on one connection.
    """
    headers = task_headers(request_id=request_id, traceparent=traceparent)
    app.send_task(CAPTURE_TASK, args=[job_id], queue=CAPTURE_QUEUE, headers=headers,
                  producer=producer)


def enqueue_delivery(app: Celery, subject: str) -> None:
    """Send the webhook delivery task for ``subject`` (a job id or ``batch:<id>``; blocking:
    call it from a thread in async code). Duplicates are harmless: the task attempts only
    what is due."""
    app.send_task(WEBHOOK_TASK, args=[subject], queue=WEBHOOK_QUEUE)

"""The Celery app's configuration and the producer side of the capture queue.

Both the API (producer only) and the workers build their Celery app with
:func:`make_celery`, so broker options can never drift apart. The API sends tasks by name
and never imports worker code.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from shared.constants import CAPTURE_QUEUE, CAPTURE_TASK, WEBHOOK_QUEUE
from shared.settings import Settings

#: Longest capture a request may ask for (CaptureOptions.timeout_ms upper bound), in seconds.
MAX_CAPTURE_SECONDS = 60
#: Longest delay before a capture retry; always far below the visibility timeout.
MAX_RETRY_DELAY_SECONDS = 60
#: Broker URL schemes that mean RabbitMQ (AMQP 0-9-1).
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})


class ShotlineCelery(Celery):
    """A Celery app that carries the :class:`Settings` it was built from."""

    settings: Settings


def make_celery(settings: Settings) -> ShotlineCelery:
    """A Celery app configured for at-least-once delivery without loss.

    Late acks plus reject-on-worker-lost mean a task whose worker dies is redelivered;
    prefetch 1 keeps one slow capture from holding queued jobs hostage.
    """
    app = ShotlineCelery("shotline", broker=settings.effective_broker_url, set_as_current=False)
    transport_options: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout_seconds,
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "health_check_interval": 10,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        task_default_queue=CAPTURE_QUEUE,
        task_routes={CAPTURE_TASK: {"queue": CAPTURE_QUEUE}},
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
        # A capture enforces its own timeout; the hard limit only catches a wedged process.
        task_time_limit=MAX_CAPTURE_SECONDS + 60,
        worker_concurrency=settings.worker_concurrency,
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
        "broker_transport_options": {"confirm_publish": True},
        "task_queues": queues,
        "task_default_exchange_type": "topic",
    }


def enqueue_capture(app: Celery, job_id: str, *, request_id: str | None) -> None:
    """Send the capture task for ``job_id`` (blocking; call it from a thread in async code)."""
    headers = {"request_id": request_id} if request_id else {}
    app.send_task(CAPTURE_TASK, args=[job_id], queue=CAPTURE_QUEUE, headers=headers)

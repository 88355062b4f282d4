"""The workers' Celery consumer: a Redis blip no longer ends the worker or its captures.

When the connection to a Redis broker breaks (Redis restarted, with AOF, for a few
seconds), Celery 5.7 closes the broken connection, and closing the consuming channel
tries to put the messages of the tasks still running back into the queue, over the very
connection that is gone: kombu fails inside that with an ``AttributeError`` that Celery does
not expect, and the whole worker stops ("Unrecoverable error"), dropping its running
captures; the jobs came back only with the sweeper's deadline, minutes later.

Putting those messages back would be wrong anyway: the tasks run on in this worker (Celery
only cancels them on connection loss for brokers that redeliver at once, see
:func:`shared.queue.make_celery`). So with a Redis broker this consumer

- keeps the running tasks' messages unacknowledged in Redis (where AOF keeps them) rather
  than requeueing them for a second worker to run too, and
- lets the closed channel still acknowledge them: the task finishes, records its outcome
  as soon as Redis answers again (:mod:`worker.outage`) and acknowledges its message
  through a fresh connection of that channel;
- tries to reconnect every second or two (:data:`RECONNECT_INTERVALS`) rather than after
  pauses growing to 30 s, so queued jobs are taken again as soon as Redis answers.

A worker that died meanwhile leaves its messages unacknowledged: they come back after the
visibility timeout, and the sweeper recovers their jobs (:mod:`worker.sweeper`).

Hand-written against kombu's Redis transport internals (``Channel.qos``,
``Transport.client``) because neither Celery nor kombu has a setting for this; the chaos
test ``tests/test_redis_blip.py`` runs it against a real Redis restart.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Final

import structlog
from celery.exceptions import CPendingDeprecationWarning
from celery.worker.consumer import Consumer

log = structlog.get_logger("shotline.consumer")

# Celery warns on every connection loss that it will cancel running tasks by default one
# day; Shotline chooses per broker (shared.queue.make_celery).
warnings.filterwarnings("ignore", message=r"\s*In Celery 5.1 we introduced",
                        category=CPendingDeprecationWarning)


#: Pauses between the consumer's attempts to reconnect: kombu's default grows by 2 s per
#: attempt up to 30 s, so a worker could wait half a minute after Redis is back before
#: taking queued jobs again. Trying every second or two costs Redis nothing.
RECONNECT_INTERVALS: Final = {"interval_start": 1.0, "interval_step": 1.0, "interval_max": 2.0}


class BlipTolerantConsumer(Consumer):
    """Celery's consumer, surviving the loss of a Redis broker; see the module docstring."""

    def ensure_connected(self, conn: Any) -> Any:
        # Celery passes no intervals to kombu's ensure_connection: give it ours.
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT_INTERVALS)
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        transport = getattr(connection, "transport", None) if connection is not None else None
        if transport is None or getattr(transport, "driver_type", None) != "redis":
            super().on_connection_error_after_connected(exc)
            return
        channels = [channel for channel in list(getattr(transport, "channels", ()))
                    if getattr(channel, "_qos", None) is not None]
        for channel in channels:
            # Not requeued on close: their tasks run on here.
            channel._qos.restore_at_shutdown = False
        running = sum(len(channel._qos._delivered) for channel in channels)
        super().on_connection_error_after_connected(exc)
        for channel in channels:
            _keep_acknowledging(channel, transport, connection)
        if running:
            log.warning("Lost the broker connection; the running tasks go on and acknowledge"
                        " their messages once Redis answers again.", running=running)


def _keep_acknowledging(channel: Any, transport: Any, connection: Any) -> None:
    """Let the closed ``channel`` open new Redis connections for its acknowledgements (its
    pool and its transport's link to the connection settings were dropped on close)."""
    channel.connection = transport
    if transport.client is None:
        transport.client = connection

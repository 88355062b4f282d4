"""A bare Celery app with one no-op task: the floor Shotline's own overhead is compared to.

It is built by :func:`shared.queue.make_celery` (the same broker options as Shotline's:
late acks, prefetch 1, JSON) on its own queue, and does nothing else: no status record,
no engine, no storage, no log line per task.

    celery -A bench.noop_app worker -Q bench.noop
"""

from __future__ import annotations

from typing import Any

from celery import signals

from shared.queue import make_celery
from shared.settings import get_settings

NOOP_QUEUE = "bench.noop"
NOOP_TASK = "bench.noop"

app = make_celery(get_settings())
app.conf.task_routes = {NOOP_TASK: {"queue": NOOP_QUEUE}}


@app.task(name=NOOP_TASK)
def noop(job_id: str) -> None:
    """Nothing: the message's round trip through Redis and the worker is all there is."""


@signals.worker_ready.connect
def _say_ready(**_: Any) -> None:
    print("ready.", flush=True)  # the harness waits for this line (the log level is WARNING)

"""The worker's Prometheus exporter: the pool children's metrics summed, plus the queues.

It runs in the worker's main process on ``SHOTLINE_WORKER_METRICS_PORT``. The children
record into per-process files (:mod:`worker.metrics_dir`); a scrape sums them and reads the
queue depths and the age of the oldest queued capture straight from Redis.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
import structlog
from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.constants import (
    CAPTURE_QUEUE,
    CAPTURE_TASK,
    FAIR_JOBS_PREFIX,
    FAIR_OWNERS_KEY,
    FAIR_WAITING_KEY,
    WEBHOOK_QUEUE,
    job_key,
)
from shared.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE, WORKER_PROCESSES
from shared.settings import Settings

log = structlog.get_logger("shotline.worker.exporter")

#: Seconds a scrape waits for Redis before reporting no queue metrics.
REDIS_TIMEOUT_SECONDS = 2.0

#: Most keys with waiting captures whose oldest job a scrape looks at.
MAX_OWNERS_SCANNED = 1000


def priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps ``queue``'s messages in (one per priority step)."""
    return [f"{queue}{Channel.sep}{step}" if step else queue for step in PRIORITY_STEPS]


def queued_job_id(raw: bytes | str) -> str | None:
    """The job id of a capture task message as kombu's Redis transport stores it, if any."""
    try:
        message = json.loads(raw)
        if message["headers"]["task"] != CAPTURE_TASK:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return args[0] if args and isinstance(args[0], str) else None


class QueueCollector(Collector):
    """Queue depth per queue and the age of the oldest queued capture, read at scrape time.

    The capture queue's depth counts the captures waiting their turn in the fair queue's
    per-key lists (:mod:`shared.fair_queue`) plus the tasks released to the broker; its
    oldest job is the oldest of the broker's tail and each key's first waiting job. A few
    round trips: list lengths and tails on the broker, the waiting count and heads on the
    status Redis, then the candidates' ``created_at``.
    """

    def __init__(
        self,
        broker: redis.Redis,
        store: redis.Redis,
        *,
        queues: Sequence[str] = (CAPTURE_QUEUE, WEBHOOK_QUEUE),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.store = store
        self.queues = tuple(queues)
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not query Redis."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The two gauges; none at all (and a warning) when Redis does not answer."""
        try:
            depths, oldest_age = self._read()
        except redis.RedisError as exc:
            log.warning("could not read the queues for the metrics", error=str(exc))
            return []
        depth = GaugeMetricFamily(
            QUEUE_DEPTH,
            "Messages waiting in a queue; for captures also those waiting their turn per API key.",
            labels=["queue"],
        )
        for queue, size in depths.items():
            depth.add_metric([queue], size)
        age = GaugeMetricFamily(
            QUEUE_OLDEST_AGE,
            "Age of the oldest capture job waiting in the queue (0 when it is empty).",
            labels=["queue"],
        )
        if oldest_age is not None:
            age.add_metric([CAPTURE_QUEUE], oldest_age)
        return [depth, age]

    def _read(self) -> tuple[dict[str, int], float | None]:
        with self.broker.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                for name in priority_lists(queue):
                    pipe.llen(name)
            for name in priority_lists(CAPTURE_QUEUE):
                pipe.lindex(name, -1)  # kombu pushes on the left and pops on the right
            replies: list[Any] = pipe.execute()
        steps = len(PRIORITY_STEPS)
        depths = {queue: sum(replies[i * steps:(i + 1) * steps])
                  for i, queue in enumerate(self.queues)}
        tails = replies[len(self.queues) * steps:]
        waiting, heads = self._waiting()
        if CAPTURE_QUEUE in depths:
            depths[CAPTURE_QUEUE] += waiting
        if depths.get(CAPTURE_QUEUE, 0) == 0:
            return depths, 0.0
        job_ids = [job_id for raw in tails if raw and (job_id := queued_job_id(raw))]
        return depths, self._oldest_age(job_ids + heads)

    def _waiting(self) -> tuple[int, list[str]]:
        """How many captures wait in the fair queue, and each waiting key's first job."""
        with self.store.pipeline(transaction=False) as pipe:
            pipe.llen(FAIR_WAITING_KEY)
            pipe.lrange(FAIR_OWNERS_KEY, 0, MAX_OWNERS_SCANNED - 1)
            waiting, owners = pipe.execute()
        if not owners:
            return int(waiting), []
        with self.store.pipeline(transaction=False) as pipe:
            for owner in owners:
                pipe.lindex(f"{FAIR_JOBS_PREFIX}{owner.decode()}", 0)
            heads = pipe.execute()
        return int(waiting), [head.decode() for head in heads if head]

    def _oldest_age(self, job_ids: list[str]) -> float | None:
        if not job_ids:
            return None
        with self.store.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(job_key(job_id), "created_at")
            created = [_timestamp(raw) for raw in pipe.execute()]
        known = [when for when in created if when is not None]
        return max(0.0, self.clock() - min(known)) if known else None


def _timestamp(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(json.loads(raw)).timestamp()
    except (ValueError, TypeError):
        return None


class PoolCollector(MultiProcessCollector):
    """The pool children's metrics summed from their files.

    A child that dies without its shutdown signal (killed, out of memory) leaves its live
    gauges behind; each scrape first drops those of processes that no longer exist.
    """

    def __init__(self, registry: CollectorRegistry, path: Path) -> None:
        super().__init__(registry, path=str(path))  # type: ignore[no-untyped-call]
        self.path = path

    def collect(self) -> Iterable[Metric]:
        """Forget dead processes' live gauges, then merge every file."""
        for pid in _dead_pids(self.path):
            mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]
        return super().collect()  # type: ignore[no-untyped-call, no-any-return]


def _dead_pids(path: Path) -> set[int]:
    pids = set()
    for file in path.glob("gauge_live*_*.db"):
        with contextlib.suppress(ValueError):
            pids.add(int(file.stem.rsplit("_", 1)[1]))
    return {pid for pid in pids if not _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class WorkerExporter:
    """The running exporter; :meth:`close` stops it and its Redis clients."""

    server: WSGIServer
    thread: Thread
    clients: tuple[redis.Redis, ...]

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving and close the Redis clients."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        for client in self.clients:
            client.close()


def scrape_client(url: str) -> redis.Redis:
    """A blocking Redis client for scrapes: short timeouts and no retries, so a scrape while
    Redis is down answers at once (without the queue gauges)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), retries=0),
    )


def start_exporter(settings: Settings, metrics_dir: Path) -> WorkerExporter:
    """Serve the pool's metrics and the queue gauges on ``settings.worker_metrics_port``."""
    registry = CollectorRegistry()
    PoolCollector(registry, metrics_dir)
    store = scrape_client(settings.redis_url)
    broker = (store if settings.effective_broker_url == settings.redis_url
              else scrape_client(settings.effective_broker_url))
    registry.register(QueueCollector(broker, store))
    server, thread = start_http_server(settings.worker_metrics_port, registry=registry)
    exporter = WorkerExporter(server, thread, tuple({id(c): c for c in (store, broker)}.values()))
    log.info("worker metrics exporter listening", port=exporter.port, metrics_dir=str(metrics_dir))
    return exporter


def pool_child_started() -> None:
    """Count this pool child as alive (in a child, right after the fork)."""
    WORKER_PROCESSES.set(1)


def pool_child_stopping() -> None:
    """Drop this pool child's live gauges (in a child, as it shuts down)."""
    mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

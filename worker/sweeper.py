"""The sweeper: finds jobs stuck in ``queued`` or ``running`` past their deadline and recovers them.

A job's queue message can vanish (a Redis without persistence restarted, a hard time limit
acked a wedged task) and a job's worker can die; Celery brings back most of these, the
sweeper catches the rest, so that no job stays non-terminal forever. Every non-terminal
job sits in the status store's pending index scored by its deadline; each sweep takes the
overdue ones and, atomically per job (:meth:`StatusStore.recover`), either enqueues it
again or fails it with ``error.code`` ``"lost"``. Parked retries (delays too long for a
broker countdown) come due through the same index.

It runs as a thread in every worker's main process rather than as Celery beat: nothing
more to deploy or forget, it never waits behind a backlog of captures in the queue (a
beat-sent sweep task would), and it works whatever the pool. One worker at a time sweeps:
the leader holds a Redis lock (redis-py's ``Lock``) with a TTL of a few intervals and renews
it on every sweep; when the leader dies its lock expires and another worker takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog
from redis.exceptions import LockError, LockNotOwnedError

from shared.composition import build_components
from shared.constants import SWEEPER_LOCK_KEY
from shared.errors import ShotlineError
from shared.jobs import Job
from shared.queue import enqueue_capture, make_celery
from shared.settings import Settings
from shared.status_store import Recovery, StatusStore, redis_errors
from shared.storage.destinations import make_storage_router
from worker.background import BackgroundLoop
from worker.monitor_results import monitor_results
from worker.pipeline import JobListener

log = structlog.get_logger("shotline.sweeper")

#: Most overdue jobs handled in one sweep (the rest wait for the next one).
BATCH = 200

Enqueue = Callable[[str, "str | None"], None]


@dataclass(slots=True)
class SweepReport:
    """What one sweep did."""

    leader: bool
    retried: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


class Sweeper:
    """Recovers overdue jobs while this process leads; see the module docstring.

    ``enqueue(job_id, request_id)`` sends a capture task (blocking; it runs in a thread).
    """

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        store: StatusStore,
        enqueue: Enqueue,
        interval: float,
        max_recoveries: int,
        max_attempts: int,
        listeners: Sequence[JobListener] = (),
        owner: str | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.enqueue = enqueue
        self.interval = interval
        self.max_recoveries = max_recoveries
        self.max_attempts = max_attempts
        self.listeners = tuple(listeners)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lock_ttl_ms = max(3000, int(interval * 3000))
        # redis-py's Lock: SET NX PX to take it, token-checked scripts to renew and release.
        self._lock = redis.lock(SWEEPER_LOCK_KEY, timeout=self.lock_ttl_ms / 1000, blocking=False,
                                thread_local=False)
        self.leading = False

    async def lead(self) -> bool:
        """Take or renew the leadership; True while this sweeper is the leader."""
        with redis_errors():
            leading = False
            if self.leading:
                with contextlib.suppress(LockNotOwnedError):  # expired, maybe taken since
                    leading = bool(await self._lock.reacquire())
            if not leading:
                leading = bool(await self._lock.acquire(token=self.owner))
        if leading != self.leading:
            log.info("sweeper leadership changed", owner=self.owner, leading=leading)
        self.leading = leading
        return leading

    async def resign(self) -> None:
        """Give up the leadership (on shutdown) so another worker takes over at once."""
        if self.leading:
            self.leading = False
            with redis_errors(), contextlib.suppress(LockError):  # not ours any more
                await self._lock.release()

    async def sweep(self) -> SweepReport:
        """One round: lead (or not), then recover every overdue job found."""
        if not await self.lead():
            return SweepReport(leader=False)
        report = SweepReport(leader=True)
        for job_id in await self.store.overdue(limit=BATCH):
            recovered = await self.store.recover(
                job_id, max_recoveries=self.max_recoveries, max_attempts=self.max_attempts
            )
            if recovered is None:
                continue
            action, job = recovered
            if action is Recovery.lost:
                report.lost.append(job_id)
                log.warning("job lost; failed by the sweeper", job_id=job_id,
                            request_id=job.request_id, attempts=job.attempts,
                            status=job.status.value, error_code="lost")
                await self._notify(job)
                continue
            await asyncio.to_thread(self.enqueue, job_id, job.request_id)
            if action is Recovery.retry:
                report.retried.append(job_id)
                log.info("parked retry due; job enqueued", job_id=job_id,
                         request_id=job.request_id, attempts=job.attempts)
            else:
                report.requeued.append(job_id)
                log.warning("job stuck past its deadline; enqueued again", job_id=job_id,
                            request_id=job.request_id, attempts=job.attempts)
        return report

    async def _notify(self, job: Job) -> None:
        for listener in self.listeners:
            try:
                await listener.job_finished(job)
            except Exception:
                log.exception("job listener failed", job_id=job.id,
                              listener=type(listener).__name__)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set; survives Redis outages."""
        while not stop.is_set():
            try:
                await self.sweep()
            except ShotlineError as exc:  # the next lead() finds out whether it still leads
                log.warning("sweep failed; trying again later", error=exc.message)
            except Exception:
                log.exception("sweep crashed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
        with contextlib.suppress(ShotlineError):
            await self.resign()


def sweeper_thread(settings: Settings, listeners: Sequence[JobListener] = ()) -> BackgroundLoop:
    """A (not yet started) sweeper thread with its own Redis client and Celery producer."""

    def build() -> tuple[Sweeper, Callable[[], Awaitable[None]]]:
        producer = make_celery(settings)
        components = build_components(settings, producer=producer, max_connections=4)

        def enqueue(job_id: str, request_id: str | None) -> None:
            enqueue_capture(producer, job_id, request_id=request_id)

        storage = make_storage_router(settings)
        # A monitor's run failed as lost counts as the monitor's failure.
        components.completion.add_job_hook(monitor_results(settings, components, storage))

        async def close() -> None:
            producer.close()
            await storage.aclose()
            await components.aclose()

        sweeper = Sweeper(
            redis=components.redis,
            store=components.jobs,
            enqueue=enqueue,
            interval=settings.sweep_interval_seconds,
            max_recoveries=settings.sweep_max_recoveries,
            max_attempts=settings.capture_max_attempts,
            # A job failed as lost is settled like any other: shared-capture followers, its
            # batch and their webhooks.
            listeners=(components.completion, *listeners),
        )
        return sweeper, close

    return BackgroundLoop(build, name="shotline-sweeper")

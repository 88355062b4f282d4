"""What happens once a job has its final answer, wherever that happens.

In the worker, :class:`Completion` is the pipeline's ``completion``: a capture's final
transition also indexes a succeeded result in the result cache and ends its single-flight
(its :meth:`~Completion.ending`, one script), then the completion finishes the jobs that
shared the capture (followers) with the same outcome and counts the job in its batch. As a
plain ``JobListener`` (the sweeper's) it does the cache and single-flight part in a round
trip of its own. In the API, the same
object settles the jobs that end there (cache hits, jobs refused inside a batch, followers
repaired on read).

Other features react to finished jobs and batches through its ``job_hooks`` and
``batch_hooks`` (give the same hooks to both the worker's and the API's instance), not as
separate pipeline listeners: many jobs end without a capture of their own, and only this
object sees them all. Each job reaches the hooks once, except when a worker died while
settling it: :class:`Resettle` then runs them again, so hooks must be idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from shared.batches import Batch, BatchStore
from shared.errors import BatchNotFound, JobNotFound
from shared.jobs import Job, JobError, JobStatus, StoredResult
from shared.result_cache import ResultCache
from shared.status_store import Ending, StatusStore

log = structlog.get_logger("shotline.completion")

#: Called with a job that just reached a final status.
JobHook = Callable[[Job], Awaitable[None]]
#: Called once with a batch whose last job just ended.
BatchHook = Callable[[Batch], Awaitable[None]]


class Completion:
    """Settles finished jobs: result cache, single-flight followers, batches, hooks."""

    def __init__(
        self,
        store: StatusStore,
        cache: ResultCache,
        batches: BatchStore,
        *,
        job_hooks: Sequence[JobHook] = (),
        batch_hooks: Sequence[BatchHook] = (),
    ) -> None:
        self.store = store
        self.cache = cache
        self.batches = batches
        self.job_hooks = tuple(job_hooks)
        self.batch_hooks = tuple(batch_hooks)

    def add_job_hook(self, hook: JobHook) -> None:
        """Also call ``hook`` with every finished job (a process adding a reaction of its
        own to the composition root's graph, e.g. the workers' monitor results)."""
        self.job_hooks = (*self.job_hooks, hook)

    def ending(self, job: Job, *, result: StoredResult | None, finished_at: datetime) -> Ending:
        """What the final transition of ``job`` (running) does to the result cache and its
        single-flight, in the same script: a capture of its own that succeeded with
        ``result`` is indexed; either way its single-flight ends. Then :meth:`ended`."""
        return self.cache.ending(job, result=result, finished_at=finished_at.timestamp(),
                                 index=not job.cached)

    async def job_finished(self, job: Job) -> None:
        """A listener: ``job`` was just captured (or failed for good) by a transition that
        did not do its :meth:`ending` (the sweeper's, a test's)."""
        # A capture of its own is indexed in the result cache; either way its single-flight
        # ends (one round trip for both).
        await self.ended(job, await self.cache.finished(job, index=not job.cached))

    async def ended(self, job: Job, followers: Sequence[str]) -> None:
        """``job`` just finished and its :meth:`ending` returned ``followers``: finish them
        with its outcome, then settle it (hooks, batch)."""
        for follower_id in followers:
            finished = await self.finish_from(follower_id, job)
            if finished is not None:
                log.info("job finished with a shared capture", job_id=finished.id,
                         capture_of=job.id, status=finished.status.value)
                await self.settled(finished)
        await self.settled(job)

    async def finish_from(self, job_id: str, source: Job) -> Job | None:
        """End ``job_id`` with ``source``'s outcome; ``None`` if it had already ended."""
        if source.status is JobStatus.succeeded and source.result is not None:
            return await self.store.mark_succeeded(job_id, source.result)
        error = source.error or JobError(code="engine_error", message="the shared capture failed")
        return await self.store.mark_failed(job_id, error)

    async def repair(self, job: Job) -> Job:
        """Finish a follower whose leader ended without finishing it (crash in between).

        Called on reads; returns ``job`` as it now stands.
        """
        if job.status.is_terminal or job.capture_of is None:
            return job
        try:
            leader = await self.store.get(job.capture_of)
        except JobNotFound:
            leader = Job(id=job.capture_of, status=JobStatus.failed, created_at=job.created_at,
                         options=job.options,
                         error=JobError(code="engine_error", message="the shared capture was lost"))
        if not leader.status.is_terminal:
            return job
        finished = await self.finish_from(job.id, leader)
        if finished is None:
            return await self.store.get(job.id)
        log.info("job finished with a shared capture on read", job_id=job.id, capture_of=leader.id,
                 status=finished.status.value)
        await self.settled(finished)
        return finished

    async def settled(self, job: Job) -> None:
        """``job`` just reached its final status: run the hooks, count it in its batch."""
        await self._run_job_hooks(job)
        if job.batch_id is None:
            return
        batch = await self.batches.job_finished(job.batch_id, job.id)
        if batch is not None:
            log.info("batch finished", batch_id=batch.id, jobs=len(batch.job_ids))
            await self._run_batch_hooks(batch)

    async def resettle(self, job: Job) -> None:
        """Settle ``job`` again: the worker that finished it may have died before it was
        counted in its batch or before the hooks ran. Counting is idempotent per job, and
        the hooks run again (job hooks, and batch hooks if its batch has ended)."""
        await self._run_job_hooks(job)
        if job.batch_id is None:
            return
        batch = await self.batches.job_finished(job.batch_id, job.id)
        if batch is None:
            try:
                batch = await self.batches.get(job.batch_id)
            except BatchNotFound:
                return
            if batch.finished_at is None:
                return
        await self._run_batch_hooks(batch)

    async def _run_job_hooks(self, job: Job) -> None:
        for hook in self.job_hooks:
            try:
                await hook(job)
            except Exception:
                log.exception("job hook failed", job_id=job.id)

    async def _run_batch_hooks(self, batch: Batch) -> None:
        for batch_hook in self.batch_hooks:
            try:
                await batch_hook(batch)
            except Exception:
                log.exception("batch hook failed", batch_id=batch.id)


class Resettle:
    """A pipeline ``renotify`` listener: a redelivered capture task found its job already
    finished, so the worker that finished it may have died before settling it completely
    (batch count, webhook, ``batch.completed``); :meth:`Completion.resettle` redoes that."""

    def __init__(self, completion: Completion) -> None:
        self.completion = completion

    async def job_finished(self, job: Job) -> None:
        """Settle ``job`` again, idempotently."""
        await self.completion.resettle(job)

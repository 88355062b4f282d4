"""What happens when a monitor's run (its capture job) ends: compare, record, notify.

A job hook of :class:`shared.completion.Completion` (the worker's, and the sweeper's for
jobs failed as lost). Jobs that are not monitor runs return at once, without I/O.

A good run is compared with the baseline (the last good run), its diff image stored beside
it, and it becomes the new baseline. A failed run, and a capture that came out blank,
count as failures: they never become the baseline and never count as a change. Recording is
done once per run (:meth:`MonitorStore.finish_run`), so a hook that runs twice for one job
(see :class:`shared.completion.Resettle`) neither records nor notifies twice.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from shared.completion import JobHook
from shared.composition import Components
from shared.constants import MONITOR_DIFFS_PREFIX
from shared.errors import JobNotFound, MonitorNotFound, ShotlineError, StorageError
from shared.jobs import Job, JobError, JobStatus, utcnow
from shared.monitors.alerts import notify
from shared.monitors.models import Monitor, MonitorRun, NotifyOn, RunStatus
from shared.monitors.store import MonitorStore
from shared.retention import RetentionIndex, delete_job
from shared.settings import Settings
from shared.status_store import StatusStore
from shared.storage.base import Storage
from shared.storage.destinations import router_of, storage_for
from shared.webhooks.listener import WebhookListener
from shared.webhooks.payload import EventType
from worker.engines.blank import is_blank
from worker.monitor_diff import Comparison, compare

log = structlog.get_logger("shotline.monitors")


async def read_file(storage: Storage, key: str) -> bytes:
    """The whole object ``key``."""
    return b"".join([chunk async for chunk in storage.stream(key)])


class MonitorResults:
    """The job hook of monitor runs; see the module docstring."""

    def __init__(self, monitors: MonitorStore, storage: Storage, webhooks: WebhookListener, *,
                 jobs: StatusStore, retention: RetentionIndex,
                 failures_before_alert: int) -> None:
        self.monitors = monitors
        self.storage = storage
        self.webhooks = webhooks
        self.jobs = jobs
        self.retention = retention
        self.failures_before_alert = failures_before_alert

    async def job_finished(self, job: Job) -> None:
        """Record the outcome of ``job`` if it is a monitor's run."""
        if job.monitor_id is None or not job.status.is_terminal:
            return
        run = await self.monitors.get_run(job.monitor_id, job.id)
        if run is None or run.status.is_terminal:
            return
        try:
            state = await self.monitors.get(job.monitor_id)
        except MonitorNotFound:
            return
        monitor = state.monitor
        if job.status is JobStatus.succeeded and job.result is not None:
            await self._succeeded(monitor, run, job, state.baseline_run_id)
        else:
            error = job.error or JobError(code="engine_error", message="the capture failed")
            await self._failed(monitor, run, error)
        await self._trim(monitor, keep={state.baseline_run_id, run.id})

    async def _succeeded(self, monitor: Monitor, run: MonitorRun, job: Job,
                         baseline_id: str | None) -> None:
        assert job.result is not None
        picture_key = job.result.key
        try:
            # In the owner's own bucket when its key has one (shared.storage.destinations).
            picture = await read_file(storage_for(self.storage, job.result.destination),
                                      picture_key)
        except StorageError as exc:
            await self._failed(monitor, run, JobError(code="storage_error", message=exc.message))
            return
        # The capture's own verdict (result.blank: essentially one colour); a result recorded
        # without one is measured here, by the same detector.
        blank = job.result.blank
        if blank is None:
            blank = await asyncio.to_thread(is_blank, picture, job.options.format)
        if blank:
            await self._failed(monitor, run, JobError(
                code="blank", message="the capture came out blank (one colour everywhere)"))
            return
        baseline = (await self.monitors.get_run(monitor.id, baseline_id)
                    if baseline_id else None)
        comparison: Comparison | None = None
        if baseline is not None and baseline.picture_key is not None:
            try:
                before = await read_file(self.storage, baseline.picture_key)
            except StorageError:
                baseline = None  # the baseline's picture is gone: this run starts afresh
            else:
                comparison = await asyncio.to_thread(compare, before, picture)
        diff_key = None
        if comparison is not None and comparison.diff_png is not None:
            diff_key = f"{MONITOR_DIFFS_PREFIX}{monitor.id}/{run.id}.diff.png"
            await self.storage.put(diff_key, comparison.diff_png, content_type="image/png")
        changed = (comparison is not None and comparison.changed_ratio > monitor.threshold
                   and bool(comparison.regions))
        finished = run.model_copy(update={
            "status": RunStatus.succeeded, "finished_at": utcnow(), "picture_key": picture_key,
            "baseline_run_id": None if baseline is None else baseline.id,
            "changed": None if comparison is None else changed,
            "changed_ratio": None if comparison is None else comparison.changed_ratio,
            "hash_distance": None if comparison is None else comparison.hash_distance,
            "regions": [] if comparison is None else comparison.regions,
            "diff_key": diff_key,
        })
        applied, _ = await self.monitors.finish_run(finished, good=True)
        if not applied:
            return
        log.info("monitor run compared", monitor_id=monitor.id, run_id=run.id,
                 changed=finished.changed, changed_ratio=finished.changed_ratio,
                 regions=len(finished.regions))
        if (changed and monitor.notify_on is NotifyOn.change) or (
                comparison is not None and monitor.notify_on is NotifyOn.every):
            await notify(self.webhooks, monitor, run, EventType.monitor_changed)

    async def _failed(self, monitor: Monitor, run: MonitorRun, error: JobError) -> None:
        finished = run.model_copy(update={"status": RunStatus.failed, "finished_at": utcnow(),
                                          "error": error})
        applied, failures = await self.monitors.finish_run(finished, good=False)
        if not applied:
            return
        log.info("monitor run failed", monitor_id=monitor.id, run_id=run.id,
                 error_code=error.code, failures=failures)
        if failures == self.failures_before_alert:
            await notify(self.webhooks, monitor, run, EventType.monitor_failed)

    async def _trim(self, monitor: Monitor, *, keep: set[str | None]) -> None:
        dropped = await self.monitors.trim_runs(
            monitor.id, keep_runs=monitor.retention.keep_runs,
            keep_days=monitor.retention.keep_days,
            keep={k for k in keep if k is not None}, now=time.time())
        if not dropped:
            return
        objects = 0
        for run in dropped:
            objects += await self._delete_files(run)
        log.info("monitor runs dropped by retention", monitor_id=monitor.id,
                 runs=len(dropped), objects=objects)

    async def _delete_files(self, run: MonitorRun) -> int:
        """Delete what a dropped run stored: its diff image, and its capture job (picture
        and record) as ``DELETE /v1/jobs/{id}`` would. A failure is logged, not raised:
        the run is already gone from the history, and the job's own retention (when set)
        still deletes its files."""
        deleted = 0
        try:
            if run.diff_key is not None:
                await self.storage.delete(run.diff_key)
                deleted += 1
            job = await self.jobs.get(run.job_id)
            if job.status.is_terminal:
                deleted += await delete_job(self.jobs, router_of(self.storage), self.retention,
                                            job)
        except JobNotFound:
            pass  # the job's record expired or was deleted by its owner
        except ShotlineError as exc:
            log.warning("could not delete a dropped monitor run's files", run_id=run.id,
                        monitor_id=run.monitor_id, error=exc.message)
        return deleted


def monitor_results(settings: Settings, components: Components,
                    storage: Storage) -> JobHook:
    """The monitor-run hook for a worker process's :class:`shared.completion.Completion`."""
    return MonitorResults(MonitorStore(components.redis), storage, components.webhooks,
                          jobs=components.jobs, retention=RetentionIndex(components.redis),
                          failures_before_alert=settings.monitor_failures_before_alert).job_finished

"""A monitor's run: an ordinary capture job, submitted through the fair queue.

The run and its job share one id. A scheduled run's id is derived from (monitor, slot)
(:func:`shared.monitors.models.slot_run_id`), so firing a slot twice (a scheduler took
over from one that died mid-tick) finds the job already submitted and submits nothing.
Runs always capture anew (no result cache, no single-flight): a monitor is there to see
the page as it is now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from shared.constants import job_key
from shared.errors import ApiKeyNotFound, QuotaExceeded
from shared.fair_queue import FairQueue
from shared.jobs import CaptureOptions, Job, JobError, JobStatus, utcnow
from shared.monitors.models import Monitor, MonitorRun, RunStatus
from shared.monitors.store import MonitorStore, utc
from shared.status_store import StatusStore, redis_errors

log = structlog.get_logger("shotline.monitors")

#: The colour masked elements are painted with at capture (the same in every run, so a
#: masked region never differs).
MASK_COLOUR = "#ff00ff"


def mask_css(selectors: Sequence[str]) -> str:
    """A style sheet painting each of ``selectors`` one flat colour: the element keeps its
    box (the layout does not move) while its content (text, images, children) is hidden."""
    if not selectors:
        return ""
    boxes = ", ".join(selectors)
    inner = ", ".join(f"{s} *" for s in selectors)
    return (f"{boxes} {{ background: {MASK_COLOUR} !important; color: transparent !important;"
            " text-shadow: none !important; border-color: transparent !important;"
            " box-shadow: none !important; }\n"
            f"{inner} {{ visibility: hidden !important; }}\n")


def run_options(monitor: Monitor) -> CaptureOptions:
    """The capture of one run: the monitor's capture, its ``hide_selectors`` removed and
    its ``mask_selectors`` painted over."""
    capture = monitor.capture
    update: dict[str, object] = {}
    if monitor.hide_selectors:
        update["hide_selectors"] = [*capture.hide_selectors, *monitor.hide_selectors]
    css = mask_css(monitor.mask_selectors)
    if css:
        update["css"] = f"{capture.css}\n{css}" if capture.css else css
    return capture.model_copy(update=update) if update else capture


#: Called with a run refused before any capture and its owner's failures in a row (the
#: scheduler sends ``monitor.failed`` from it, as for a failed capture).
OnRefused = Callable[[Monitor, MonitorRun, int], Awaitable[None]]

#: Charges one capture to an owner's monthly quota (an API key id, ``None`` when anonymous);
#: raises :class:`shared.errors.QuotaExceeded` or :class:`shared.errors.ApiKeyNotFound`.
Charge = Callable[[str | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunStarter:
    """Submits runs as capture jobs (scheduler and ``run now`` alike).

    With ``charge``, each new run is charged to its owner's quota first; a run the quota
    (or a deleted key) refuses is recorded failed, without a job, and ``on_refused`` is told.
    """

    monitors: MonitorStore
    jobs: StatusStore
    fair: FairQueue
    charge: Charge | None = None
    on_refused: OnRefused | None = None

    async def start(self, planned: Sequence[tuple[Monitor, str, float, str]]) -> list[MonitorRun]:
        """Record and submit each ``(monitor, run id, scheduled time, trigger)``.

        Idempotent per run id: a run whose job exists already is not submitted again.
        Returns the runs (new or found).
        """
        now = utcnow()
        runs = [MonitorRun(id=run_id, monitor_id=monitor.id, job_id=run_id, trigger=trigger,
                           scheduled_at=utc(slot))
                for monitor, run_id, slot, trigger in planned]
        await self.monitors.add_runs(runs)
        runs_by_id = {run.id: run for run in runs}
        existing = await self._exist([run.job_id for run in runs])
        jobs: list[Job] = []
        for (monitor, run_id, _, trigger), there in zip(planned, existing, strict=True):
            if there:
                log.info("monitor run already submitted", monitor_id=monitor.id, job_id=run_id)
                continue
            if self.charge is not None and not await self._charged(monitor, runs_by_id[run_id]):
                continue
            jobs.append(Job(id=run_id, status=JobStatus.queued, created_at=now,
                            options=run_options(monitor), api_key_id=monitor.api_key_id,
                            monitor_id=monitor.id))
            log.debug("monitor run queued", monitor_id=monitor.id, job_id=run_id,
                      trigger=trigger)
        await self.fair.submit_many(jobs)
        return runs

    async def _charged(self, monitor: Monitor, run: MonitorRun) -> bool:
        assert self.charge is not None
        try:
            await self.charge(monitor.api_key_id)
        except (QuotaExceeded, ApiKeyNotFound) as exc:
            failed = run.model_copy(update={
                "status": RunStatus.failed, "finished_at": utcnow(),
                "error": JobError(code=exc.code, message=exc.message)})
            applied, failures = await self.monitors.finish_run(failed, good=False)
            log.warning("monitor run refused", monitor_id=monitor.id, run_id=run.id,
                        error_code=exc.code)
            if applied and self.on_refused is not None:
                await self.on_refused(monitor, failed, failures)
            return False
        return True

    async def _exist(self, job_ids: list[str]) -> list[bool]:
        with redis_errors():
            async with self.jobs.redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.exists(job_key(job_id))
                return [bool(n) for n in await pipe.execute()]

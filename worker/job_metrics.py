"""The pipeline listener that turns finished jobs into Prometheus metrics."""

from __future__ import annotations

from shared.jobs import Job
from shared.metrics import record_job_finished


class MetricsListener:
    """Counts every finished job by outcome and error code and observes its durations.

    A :class:`worker.pipeline.JobListener`: the pipeline calls it once per final outcome,
    so each job is counted once however many attempts it took.
    """

    def __init__(self, *, engine: str) -> None:
        self.engine = engine

    async def job_finished(self, job: Job) -> None:
        """Record ``job``'s outcome (see :func:`shared.metrics.record_job_finished`)."""
        record_job_finished(job, engine=self.engine)

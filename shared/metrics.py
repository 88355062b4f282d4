"""Every Prometheus metric Shotline's workers record, defined once.

The metrics live in prometheus_client's default registry. A worker run with
``SHOTLINE_WORKER_METRICS_PORT`` keeps them in multiprocess mode (one file per pool child,
see :mod:`worker.metrics_dir`) and serves their sum from its main process
(:mod:`worker.exporter`). The API's own HTTP metrics are separate (:mod:`api.metrics`).

Code records through the small ``record_*`` helpers below rather than touching the metric
objects, so label values stay few and spelled one way.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter, Gauge, Histogram

from shared.jobs import Job, JobStatus

#: Buckets (seconds) for capture and upstream response times: captures take 0.2 s to 60 s.
CAPTURE_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0)

#: Buckets (seconds) for a job's whole life, queue wait and retries included.
JOB_LATENCY_BUCKETS: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

#: Name of the gauge of messages waiting in a queue (computed at scrape time).
QUEUE_DEPTH: Final = "shotline_queue_depth"

#: Name of the gauge of the age of the oldest queued capture job (computed at scrape time).
QUEUE_OLDEST_AGE: Final = "shotline_queue_oldest_job_age_seconds"

#: Label value of ``error_code`` for jobs that succeeded.
NO_ERROR: Final = "none"

JOBS_FINISHED = Counter(
    "shotline_jobs_total",
    "Jobs that reached a final status, by outcome (succeeded|failed), error code and engine.",
    ["outcome", "error_code", "engine"],
)
CAPTURE_DURATION = Histogram(
    "shotline_capture_duration_seconds",
    "Duration of a job's final attempt (URL check, capture and storage), by engine, format"
    " and outcome.",
    ["engine", "format", "outcome"],
    buckets=CAPTURE_BUCKETS,
)
JOB_LATENCY = Histogram(
    "shotline_job_latency_seconds",
    "Time from submission to final status (queue wait and retries included), by outcome.",
    ["outcome"],
    buckets=JOB_LATENCY_BUCKETS,
)
SNAPAPI_RESPONSES = Histogram(
    "shotline_snapapi_response_seconds",
    "Response time of SnapAPI calls, by HTTP status (or 'timeout' / 'error' without one).",
    ["status"],
    buckets=CAPTURE_BUCKETS,
)
WEBHOOK_ATTEMPTS = Counter(
    "shotline_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (delivered|failed|gave_up).",
    ["outcome"],
)
CACHE_LOOKUPS = Counter(
    "shotline_cache_lookups_total",
    "Result cache lookups, by result (hit|miss).",
    ["result"],
)
JOBS_SUBMITTED = Counter(
    "shotline_jobs_submitted_total",
    "Capture jobs submitted to the API, by outcome (queued: a capture of its own; cached: answered"
    " by a stored capture; shared: joined an identical capture in flight; refused: by the URL"
    " policy, quota, rate limit or engine), the refusal's error code (none otherwise), engine"
    " and format (unknown when refused before the body was read).",
    ["outcome", "reason", "engine", "format"],
)
BROWSER_RESTARTS = Counter(
    "shotline_browser_restarts_total",
    "Chromium relaunches after the first launch (the browser crashed, was killed or hung).",
)
WORKER_PROCESSES = Gauge(
    "shotline_worker_processes",
    "Capture processes alive in this worker's pool.",
    multiprocess_mode="livesum",
)

WebhookOutcome = Literal["delivered", "failed", "gave_up"]
SubmitOutcome = Literal["queued", "cached", "shared", "refused"]


def record_job_finished(job: Job, *, engine: str) -> None:
    """Count ``job`` (just succeeded or failed) and observe its durations."""
    outcome = job.status.value
    code = job.error.code if job.status is JobStatus.failed and job.error else NO_ERROR
    JOBS_FINISHED.labels(outcome=outcome, error_code=code, engine=engine).inc()
    if job.finished_at is None:
        return
    if job.started_at is not None:
        CAPTURE_DURATION.labels(engine=engine, format=job.options.format.value,
                                outcome=outcome).observe(
            max(0.0, (job.finished_at - job.started_at).total_seconds())
        )
    JOB_LATENCY.labels(outcome=outcome).observe(
        max(0.0, (job.finished_at - job.created_at).total_seconds())
    )


def record_snapapi_response(status: int | str, seconds: float) -> None:
    """Observe one SnapAPI call: its HTTP status (or ``"timeout"``/``"error"``) and duration."""
    SNAPAPI_RESPONSES.labels(status=str(status)).observe(seconds)


def record_webhook_attempt(outcome: WebhookOutcome) -> None:
    """Count one webhook delivery attempt.

    ``delivered``: the endpoint answered 2xx. ``failed``: it did not (error status, timeout,
    refused connection) and another attempt is scheduled. ``gave_up``: it did not and no
    attempt is left (or the endpoint is disabled).
    """
    WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()


def record_cache_lookup(*, hit: bool) -> None:
    """Count one result cache lookup."""
    CACHE_LOOKUPS.labels(result="hit" if hit else "miss").inc()


def record_job_submitted(outcome: SubmitOutcome, *, engine: str, format: str,
                         reason: str = NO_ERROR) -> None:
    """Count one capture job submitted to the API (``reason``: a refusal's error code)."""
    JOBS_SUBMITTED.labels(outcome=outcome, reason=reason, engine=engine, format=format).inc()


def record_browser_restart() -> None:
    """Count one relaunch of Chromium after its first launch."""
    BROWSER_RESTARTS.inc()

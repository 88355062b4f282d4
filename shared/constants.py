"""Every Redis key prefix, queue name, task name and storage prefix in one place."""

from typing import Final

#: Redis hash holding one job's status record: ``shotline:job:<job_id>``.
JOB_KEY_PREFIX: Final = "shotline:job:"

#: Redis hash of one API key's record (hashed key, name, webhook secrets, limits):
#: ``shotline:apikey:<key_id>``. The plain key is never stored.
API_KEY_PREFIX: Final = "shotline:apikey:"

#: Redis sorted set of one owner's most recent job ids, scored by creation time:
#: ``shotline:jobs:recent:<api_key_id or "anon">``. Backs ``GET /v1/jobs`` and the web console.
RECENT_JOBS_PREFIX: Final = "shotline:jobs:recent:"

#: Most job ids kept per owner in the recent-jobs set (older ones are trimmed on create).
RECENT_JOBS_CAP: Final = 1000

#: Sorted set of every non-terminal job, scored by its deadline (unix seconds, Redis clock):
#: the sweeper's index of jobs that may be stuck. Kept by the status store's Lua scripts.
PENDING_JOBS_KEY: Final = "shotline:jobs:pending"

#: Lock (SET NX PX) held by the one worker whose sweeper runs right now.
SWEEPER_LOCK_KEY: Final = "shotline:sweeper:leader"

#: Sorted set of leases on the fleet-wide slots of one semaphore, scored by expiry:
#: ``shotline:semaphore:<name>``.
SEMAPHORE_KEY_PREFIX: Final = "shotline:semaphore:"

#: Name of the semaphore bounding concurrent SnapAPI calls across the fleet.
SNAPAPI_SEMAPHORE: Final = "snapapi"

#: Redis set of every API key id ever created (revoked ones included): ``shotline:apikeys``.
API_KEY_IDS: Final = "shotline:apikeys"

#: Redis string mapping a key's hash to its id: ``shotline:apikey-hash:<sha256 hex>``.
API_KEY_HASH_PREFIX: Final = "shotline:apikey-hash:"

#: Owner name of work done without an API key (single-tenant mode).
ANONYMOUS_OWNER: Final = "anon"

#: Prefix of the rate limiter's moving-window keys (``limits`` appends its own suffix).
RATE_LIMIT_PREFIX: Final = "shotline:ratelimit"

#: Redis counter of one key's captures in one month: ``shotline:quota:<key_id>:<YYYY-MM>``.
QUOTA_PREFIX: Final = "shotline:quota:"

#: Redis hash of one idempotent request: ``shotline:idem:<scope>:<sha256 of the header>``.
IDEMPOTENCY_PREFIX: Final = "shotline:idem:"

#: Redis string pointing at the latest succeeded capture of one owner's options:
#: ``shotline:cache:<owner>:<options sha256>`` → ``{"job_id", "finished_at"}``.
CACHE_PREFIX: Final = "shotline:cache:"

#: Redis string naming the job capturing one owner's options right now (single-flight):
#: ``shotline:inflight:<owner>:<options sha256>`` → job id.
INFLIGHT_PREFIX: Final = "shotline:inflight:"

#: Redis set of the jobs waiting for another job's capture: ``shotline:followers:<job_id>``.
FOLLOWERS_PREFIX: Final = "shotline:followers:"

#: Redis hash of one batch: ``shotline:batch:<batch_id>``.
BATCH_KEY_PREFIX: Final = "shotline:batch:"

#: Redis list of one owner's captures waiting their turn, oldest first:
#: ``shotline:fair:jobs:<api_key_id or "anon">``. The dispatcher releases them into the
#: Celery capture queue round-robin across owners (:mod:`shared.fair_queue`).
FAIR_JOBS_PREFIX: Final = "shotline:fair:jobs:"

#: Redis list of the owners with captures waiting, in round-robin order (an owner is in it
#: exactly when its ``fair:jobs`` list is not empty).
FAIR_OWNERS_KEY: Final = "shotline:fair:owners"

#: Redis list with one token per capture waiting its turn: its length is the backlog that
#: autoscalers read (KEDA's redis trigger only reads list lengths).
FAIR_WAITING_KEY: Final = "shotline:fair:waiting"

#: Sorted set of released captures whose task has not started yet (member: job id, score:
#: release time). Its size is what the dispatcher keeps at ``SHOTLINE_DISPATCH_AHEAD``.
FAIR_DISPATCHED_KEY: Final = "shotline:fair:dispatched"

#: Sorted set of captures claimed by a dispatcher and not yet published, scored by the end
#: of the claim's lease: any dispatcher publishes again those whose lease ran out.
FAIR_RELEASING_KEY: Final = "shotline:fair:releasing"

#: Redis list the dispatchers block on (BLPOP): a token is pushed when a capture is
#: submitted or a released one starts, so a dispatcher acts at once.
FAIR_WAKE_KEY: Final = "shotline:fair:wake"

#: Celery queue for capture tasks.
CAPTURE_QUEUE: Final = "shotline.capture"

#: Celery task name of the capture task (the API sends by name; it never imports worker code).
CAPTURE_TASK: Final = "shotline.capture"

#: Celery queue for webhook deliveries (a dead endpoint never holds a capture worker).
WEBHOOK_QUEUE: Final = "shotline.webhooks"

#: Celery task name of one webhook delivery attempt.
WEBHOOK_TASK: Final = "shotline.webhooks.deliver"

#: Redis hash of one delivery (state, round, next attempt): ``shotline:webhook:<subject>``,
#: where a subject is a job id or ``batch:<batch_id>`` (see :mod:`shared.webhooks.subjects`).
WEBHOOK_KEY_PREFIX: Final = "shotline:webhook:"

#: Redis list of one delivery's attempts, oldest first (JSON each):
#: ``shotline:webhook-attempts:<subject>``.
WEBHOOK_ATTEMPTS_PREFIX: Final = "shotline:webhook-attempts:"

#: Redis string held while one delivery attempt runs: ``shotline:webhook-lock:<subject>``.
WEBHOOK_LOCK_PREFIX: Final = "shotline:webhook-lock:"

#: Redis sorted set of the deliveries waiting for an attempt (member: subject; score: the
#: Unix time it is due). The dispatcher enqueues what is due; retries live here, not in
#: Celery countdowns, so they survive worker restarts.
WEBHOOK_DUE_KEY: Final = "shotline:webhooks:due"

#: Redis string marking an endpoint disabled after it answered 410 Gone:
#: ``shotline:webhook-disabled:<sha256 of owner and URL>``.
WEBHOOK_DISABLED_PREFIX: Final = "shotline:webhook-disabled:"

#: Prefix of a batch's webhook subject (``batch:<batch_id>``); a job's subject is its bare id.
WEBHOOK_BATCH_SUBJECT_PREFIX: Final = "batch:"

#: Sorted set of the captures whose files the retention period deletes (member: job id,
#: score: when, Unix seconds). Claimed by bumping the score by a lease (:mod:`shared.retention`).
RETENTION_DUE_KEY: Final = "shotline:retention:due"

#: Redis hash of what each scheduled deletion removes (field: job id, value: JSON with the
#: object keys and their storage), kept apart from the job record, which may expire first.
RETENTION_OBJECTS_KEY: Final = "shotline:retention:objects"

#: Redis hash of one monitor: its record (JSON) and moving state (anchor, baseline run,
#: failures in a row, the slot being fired): ``shotline:monitor:<monitor_id>``.
MONITOR_KEY_PREFIX: Final = "shotline:monitor:"

#: Redis sorted set of an owner's monitors (score: creation time): ``shotline:monitors:owner:<owner>``.
MONITORS_OWNER_PREFIX: Final = "shotline:monitors:owner:"

#: Redis sorted set of the monitors' next slots (member: monitor id; score: Unix time due).
MONITORS_DUE_KEY: Final = "shotline:monitors:due"

#: Redis sorted set of a monitor's runs (score: scheduled time): ``shotline:monitor-runs:<id>``.
MONITOR_RUNS_PREFIX: Final = "shotline:monitor-runs:"

#: Redis hash of a monitor's run records (field: run id; value: JSON):
#: ``shotline:monitor-run-data:<monitor_id>``.
MONITOR_RUN_DATA_PREFIX: Final = "shotline:monitor-run-data:"

#: Prefix of a monitor event's webhook subject: ``monitor:<monitor_id>:<run_id>``.
WEBHOOK_MONITOR_SUBJECT_PREFIX: Final = "monitor:"

#: Storage key prefix of monitors' diff images.
MONITOR_DIFFS_PREFIX: Final = "monitors/"

#: Storage key prefix for capture results.
RESULTS_PREFIX: Final = "results/"

#: File name (under the data dir) of the generated signing secret when none is configured.
SECRET_KEY_FILE: Final = ".signing-secret"

#: Longest URL accepted anywhere (capture pages, webhooks).
MAX_URL_LENGTH: Final = 2048

#: Tallest full-page capture, in CSS pixels, when the request sets no ``max_height``
#: (the largest ``max_height`` there is).
MAX_FULL_PAGE_HEIGHT: Final = 20000

#: Widest full-page capture, in CSS pixels (the widest viewport there is).
MAX_FULL_PAGE_WIDTH: Final = 3840

#: Most device pixels (width x height x scale²) a full-page capture keeps: 128 MB of
#: bitmap; a taller page is cut.
MAX_CAPTURE_PIXELS: Final = 32_000_000

#: Largest request body the API reads, in bytes, unless configured otherwise.
DEFAULT_MAX_REQUEST_BYTES: Final = 1024 * 1024

#: Header the API takes the correlation id from and echoes back.
REQUEST_ID_HEADER: Final = "X-Request-ID"

#: W3C Trace Context header taken from the caller and passed along (queue, SnapAPI, webhooks).
TRACEPARENT_HEADER: Final = "traceparent"


def job_key(job_id: str) -> str:
    """Redis key of the status record of ``job_id``."""
    return f"{JOB_KEY_PREFIX}{job_id}"


def recent_jobs_key(api_key_id: str | None) -> str:
    """Redis key of the recent-jobs set of ``api_key_id`` (``None``: no API key)."""
    return f"{RECENT_JOBS_PREFIX}{api_key_id or ANONYMOUS_OWNER}"


def semaphore_key(name: str) -> str:
    """Redis key of the fleet-wide semaphore ``name``."""
    return f"{SEMAPHORE_KEY_PREFIX}{name}"


def fair_jobs_key(api_key_id: str | None) -> str:
    """Redis key of the list of ``api_key_id``'s captures waiting their turn."""
    return f"{FAIR_JOBS_PREFIX}{api_key_id or ANONYMOUS_OWNER}"

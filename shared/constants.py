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

#: Owner name of jobs created without an API key (single-tenant mode).
ANONYMOUS_OWNER: Final = "anon"

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

#: Celery queue for capture tasks.
CAPTURE_QUEUE: Final = "shotline.capture"

#: Celery task name of the capture task (the API sends by name; it never imports worker code).
CAPTURE_TASK: Final = "shotline.capture"

#: Celery queue for webhook deliveries (a dead endpoint never holds a capture worker).
WEBHOOK_QUEUE: Final = "shotline.webhooks"

#: Storage key prefix for capture results.
RESULTS_PREFIX: Final = "results/"

#: File name (under the data dir) of the generated signing secret when none is configured.
SECRET_KEY_FILE: Final = ".signing-secret"

#: Longest URL accepted anywhere (capture pages, webhooks).
MAX_URL_LENGTH: Final = 2048

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

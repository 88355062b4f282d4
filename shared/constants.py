"""Every Redis key prefix, queue name, task name and storage prefix in one place."""

from typing import Final

#: Redis hash holding one job's status record: ``shotline:job:<job_id>``.
JOB_KEY_PREFIX: Final = "shotline:job:"

#: Redis hash of one API key's record (hashed key, name, webhook secrets, limits):
#: ``shotline:apikey:<key_id>``. The plain key is never stored.
API_KEY_PREFIX: Final = "shotline:apikey:"

#: Celery queue for capture tasks.
CAPTURE_QUEUE: Final = "shotline.capture"

#: Celery task name of the capture task (the API sends by name; it never imports worker code).
CAPTURE_TASK: Final = "shotline.capture"

#: Celery queue for webhook deliveries (a dead endpoint never holds a capture worker).
WEBHOOK_QUEUE: Final = "shotline.webhooks"

#: Celery task name of one webhook delivery attempt.
WEBHOOK_TASK: Final = "shotline.webhooks.deliver"

#: Redis hash of one job's webhook delivery (state, round, next attempt):
#: ``shotline:webhook:<job_id>``.
WEBHOOK_KEY_PREFIX: Final = "shotline:webhook:"

#: Redis list of one job's delivery attempts, oldest first (JSON each):
#: ``shotline:webhook-attempts:<job_id>``.
WEBHOOK_ATTEMPTS_PREFIX: Final = "shotline:webhook-attempts:"

#: Redis string held while one job's delivery attempt runs: ``shotline:webhook-lock:<job_id>``.
WEBHOOK_LOCK_PREFIX: Final = "shotline:webhook-lock:"

#: Redis sorted set of the deliveries waiting for an attempt (member: job id; score: the
#: Unix time it is due). The dispatcher enqueues what is due; retries live here, not in
#: Celery countdowns, so they survive worker restarts.
WEBHOOK_DUE_KEY: Final = "shotline:webhooks:due"

#: Redis string marking an endpoint disabled after it answered 410 Gone:
#: ``shotline:webhook-disabled:<sha256 of owner and URL>``.
WEBHOOK_DISABLED_PREFIX: Final = "shotline:webhook-disabled:"

#: Storage key prefix for capture results.
RESULTS_PREFIX: Final = "results/"

#: File name (under the data dir) of the generated signing secret when none is configured.
SECRET_KEY_FILE: Final = ".signing-secret"

#: Longest URL accepted anywhere (capture pages, webhooks).
MAX_URL_LENGTH: Final = 2048

#: Header the API takes the correlation id from and echoes back.
REQUEST_ID_HEADER: Final = "X-Request-ID"


def job_key(job_id: str) -> str:
    """Redis key of the status record of ``job_id``."""
    return f"{JOB_KEY_PREFIX}{job_id}"

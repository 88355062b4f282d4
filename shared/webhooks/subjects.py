"""What a webhook delivery is about, named by one string: its *subject*.

The delivery store, the due set, the attempt lock and the delivery task all key on a
subject. A job's subject is its bare id, exactly what those keys held before batches had
webhooks, so job deliveries stored, due or queued by an earlier version stay valid
(``shotline:webhook:<job_id>``). A batch's subject is ``batch:<batch_id>``: ids are hex, so
a colon never occurs in a job's subject and the two kinds cannot collide.
"""

from __future__ import annotations

from shared.constants import WEBHOOK_BATCH_SUBJECT_PREFIX


def batch_subject(batch_id: str) -> str:
    """The subject of ``batch_id``'s ``batch.completed`` delivery."""
    return f"{WEBHOOK_BATCH_SUBJECT_PREFIX}{batch_id}"


def batch_id_of(subject: str) -> str | None:
    """The batch id ``subject`` names, or ``None`` when it names a job (its bare id)."""
    if subject.startswith(WEBHOOK_BATCH_SUBJECT_PREFIX):
        return subject[len(WEBHOOK_BATCH_SUBJECT_PREFIX):]
    return None

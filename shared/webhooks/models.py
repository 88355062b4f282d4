"""The records of webhook deliveries: one delivery per finished job or batch, many attempts each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.webhooks.payload import EventType


class DeliveryState(StrEnum):
    """Where a job's or batch's webhook stands."""

    #: The job (batch) asked for no webhook.
    none = "none"
    #: The job (every job of the batch) has not finished yet; nothing to send.
    waiting = "waiting"
    #: An attempt is due or in progress, or a retry is scheduled (see ``next_attempt_at``).
    scheduled = "scheduled"
    #: The endpoint answered 2xx.
    delivered = "delivered"
    #: Every attempt of the retry schedule failed.
    failed = "failed"
    #: The endpoint answered 410 Gone (now or earlier): it gets nothing more until a redelivery.
    disabled = "disabled"

    @property
    def is_final(self) -> bool:
        """True when no further attempt will be made without a redelivery."""
        return self in (DeliveryState.delivered, DeliveryState.failed, DeliveryState.disabled)


class AttemptOutcome(StrEnum):
    """What became of the delivery after one attempt."""

    delivered = "delivered"
    retrying = "retrying"
    failed = "failed"
    disabled = "disabled"


class DeliveryAttempt(BaseModel):
    """One attempt to deliver an event, as recorded and as ``GET .../deliveries`` shows it."""

    number: int = Field(description="1 for the first attempt, counting across redeliveries.")
    round: int = Field(description="0 for the automatic delivery, n for the n-th redelivery.")
    at: datetime = Field(description="When the attempt started.")
    webhook_id: str
    url: str
    status: int | None = Field(default=None, description="HTTP status, when the endpoint answered.")
    error: str | None = Field(
        default=None, description="Why the attempt failed when there is no 2xx status to say it."
    )
    duration_ms: int
    outcome: AttemptOutcome
    next_attempt_at: datetime | None = Field(
        default=None, description="When the next attempt is due (retrying only)."
    )


class DeliveryLogBase(BaseModel):
    """A webhook's current state and every attempt so far, oldest first."""

    webhook_url: str | None = None
    event: EventType | None = None
    webhook_id: str | None = None
    state: DeliveryState
    next_attempt_at: datetime | None = None
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


class DeliveryLog(DeliveryLogBase):
    """A job's webhook (``GET /v1/jobs/{id}/deliveries``)."""

    job_id: str


class BatchDeliveryLog(DeliveryLogBase):
    """A batch's ``batch.completed`` webhook (``GET /v1/batches/{id}/deliveries``)."""

    batch_id: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """The stored state of one delivery."""

    #: What it is about: a job id, or ``batch:<id>`` (:mod:`shared.webhooks.subjects`).
    subject: str
    event: EventType
    webhook_id: str
    url: str
    #: The API key that owns the job or batch (its secret signs); ``None`` in single-tenant mode.
    owner: str | None
    state: DeliveryState
    #: 0 for the automatic delivery, incremented by each redelivery.
    round: int
    #: Failed attempts in a row in this round (indexes the retry schedule).
    failures: int
    #: Attempts made so far, all rounds together.
    attempts: int
    #: Unix time the next attempt is due; ``None`` once the state is final.
    next_attempt_at: float | None

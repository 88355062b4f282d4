"""The records of webhook deliveries: one delivery per finished job, many attempts each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.webhooks.payload import EventType


class DeliveryState(StrEnum):
    """Where a job's webhook stands."""

    #: The job asked for no webhook.
    none = "none"
    #: The job has not finished yet; nothing to send.
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
    """One attempt to deliver a job's event, as recorded and as ``GET .../deliveries`` shows it."""

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


class DeliveryLog(BaseModel):
    """A job's webhook: its current state and every attempt so far, oldest first."""

    job_id: str
    webhook_url: str | None = None
    event: EventType | None = None
    webhook_id: str | None = None
    state: DeliveryState
    next_attempt_at: datetime | None = None
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The stored state of one job's delivery."""

    job_id: str
    event: EventType
    webhook_id: str
    url: str
    #: The API key that owns the job (its secret signs); ``None`` in single-tenant mode.
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

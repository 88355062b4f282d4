"""What an attempt's answer means and when to try again: pure functions, no I/O.

2xx is delivered; 410 Gone disables the endpoint; anything else (3xx included: redirects
are never followed) and every transport error is retried along the schedule. For 429,
502, 503 and 504 a ``Retry-After`` header is honoured: the next attempt is never earlier
than it asks (nor earlier than the schedule says).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from shared.backoff import spread

#: Statuses whose ``Retry-After`` is honoured.
RETRY_AFTER_STATUSES: Final = frozenset({429, 502, 503, 504})
#: Each scheduled delay is spread over ±this fraction of itself.
JITTER: Final = 0.2


class Verdict(StrEnum):
    """What one attempt's answer means for the delivery."""

    delivered = "delivered"
    retry = "retry"
    disabled = "disabled"


def verdict_for(status: int | None) -> Verdict:
    """The meaning of HTTP ``status`` (``None``: no answer at all)."""
    if status is not None and 200 <= status < 300:
        return Verdict.delivered
    if status == 410:
        return Verdict.disabled
    return Verdict.retry


def next_delay(
    failed_attempts: int,
    schedule: Sequence[int],
    *,
    status: int | None = None,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``failed_attempts`` failures in a row, or ``None``
    when the schedule is used up (the delivery has failed).

    ``schedule[n]`` is the wait after the (n+1)-th failure, spread by ±20 % jitter so that
    deliveries failing together do not come back together.
    """
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    base = float(schedule[failed_attempts - 1])
    delay = spread(base, JITTER, rng=rng)
    if status in RETRY_AFTER_STATUSES and retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def utc_from_timestamp(seconds: float) -> datetime:
    """``seconds`` since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)

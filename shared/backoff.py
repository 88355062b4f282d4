"""When to try again: the one backoff of Shotline (exponential growth with full jitter, and
the spread of a scheduled delay) and the one ``Retry-After`` parser. Pure functions of their
arguments (pass ``rng`` and ``now`` for reproducible tests).

- :func:`backoff_delay` — capture retries (worker pipeline) and the Python client's polls:
  ``min(cap, base * factor ** (attempt - 1))`` as the ceiling, then *full jitter* (AWS's
  name): a uniform draw in ``[0, ceiling]``, so callers failing together spread over the
  whole window instead of its upper half (which is "equal jitter").
- :func:`spread` — webhook deliveries follow a configured schedule
  (``SHOTLINE_WEBHOOK_RETRY_SCHEDULE``); each scheduled delay is spread by a fraction of
  itself so that deliveries failing together do not come back together.
- :func:`parse_retry_after` — a ``Retry-After`` answer from SnapAPI, a webhook receiver or
  Shotline's own API (the Python client).
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from datetime import UTC
from typing import Final

#: Longest wait a ``Retry-After`` can impose, in seconds.
MAX_RETRY_AFTER_SECONDS: Final = 24 * 3600.0


def backoff_delay(attempt: int, *, base: float, cap: float, factor: float = 2.0,
                  jitter: bool = True, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): the exponential ceiling, capped at
    ``cap``, with full jitter (uniform in ``[0, ceiling]``) unless ``jitter`` is false."""
    ceiling = min(cap, base * factor ** max(0, attempt - 1))
    return (rng or random).uniform(0.0, ceiling) if jitter else ceiling


def spread(delay: float, fraction: float, *, rng: random.Random | None = None) -> float:
    """``delay`` moved uniformly within ±``fraction`` of itself."""
    return delay * (rng or random).uniform(1 - fraction, 1 + fraction)


def parse_retry_after(value: str | None, *, now: float | None = None,
                      maximum: float = MAX_RETRY_AFTER_SECONDS) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds (decimals accepted) or an
    HTTP date (a zone-less date is GMT, as RFC 9110 dates are).

    ``None`` when absent or unreadable; never negative, never above ``maximum``.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), maximum) if math.isfinite(seconds) else None

"""Riding out a Redis outage (a restart, a failover) when an attempt has its outcome.

A capture that ends while Redis is away has done its work: its picture is stored, only the
job's record is missing. Sending the task back to the queue would run the capture again
(and with Redis as the broker, sending it fails too, leaving the job to the sweeper's
deadline, minutes later). So the pipeline's last writes wait for Redis to answer again,
trying with a short exponential backoff (:func:`shared.backoff.backoff_delay`), for a
bounded time; the job ends as soon as Redis is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import structlog

from shared.backoff import backoff_delay
from shared.errors import StoreUnavailable

log = structlog.get_logger("shotline.outage")

T = TypeVar("T")

#: How long an attempt's last writes wait for Redis to answer again (a restart with AOF
#: takes seconds); past it :class:`StoreUnavailable` is raised as before.
RECORD_WAIT_SECONDS: Final = 60.0
#: First pause between two tries, doubling up to :data:`RECORD_RETRY_CAP_SECONDS`.
RECORD_RETRY_BASE_SECONDS: Final = 0.1
RECORD_RETRY_CAP_SECONDS: Final = 1.0


async def through_outage(write: Callable[[], Awaitable[T]], *, what: str,
                         within: float = RECORD_WAIT_SECONDS) -> T:
    """``await write()``, tried again while Redis is unreachable, for ``within`` seconds.

    Raises:
        StoreUnavailable: Redis still unreachable after ``within`` seconds.
    """
    deadline = time.monotonic() + within
    tries = 0
    while True:
        try:
            result = await write()
        except StoreUnavailable as exc:
            tries += 1
            pause = backoff_delay(tries, base=RECORD_RETRY_BASE_SECONDS,
                                  cap=RECORD_RETRY_CAP_SECONDS, jitter=False)
            if time.monotonic() + pause > deadline:
                raise
            if tries == 1:
                log.warning("Redis is unreachable; waiting for it to record the outcome.",
                            write=what, error=exc.message, within_s=within)
            await asyncio.sleep(pause)
            continue
        if tries:
            log.info("Redis answers again; outcome recorded.", write=what, tries=tries + 1)
        return result

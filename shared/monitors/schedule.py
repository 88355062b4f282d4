"""When a monitor's runs fall: its *slots*.

An interval schedule's slots are ``anchor + k * interval`` (the anchor is when the monitor
was created or last resumed); a cron schedule's are the expression's matches in its time
zone (croniter does the calendar, daylight-saving changes included). Slots are Unix times.
After downtime the scheduler fires the oldest missed slot once and then moves to the first
slot after *now*: a monitor runs once, not once per missed slot.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.monitors.models import Schedule


def next_slot(schedule: Schedule, *, after: float, anchor: float) -> float:
    """The first slot of ``schedule`` strictly after ``after`` (Unix seconds)."""
    if schedule.interval_seconds is not None:
        interval = schedule.interval_seconds
        if after < anchor:
            return anchor
        return anchor + (math.floor((after - anchor) / interval) + 1) * interval
    assert schedule.cron is not None
    start = datetime.fromtimestamp(after, UTC).astimezone(ZoneInfo(schedule.timezone))
    nxt: datetime = croniter(schedule.cron, start).get_next(datetime)
    return nxt.timestamp()


def first_slot(schedule: Schedule, *, now: float) -> float:
    """The first slot of a monitor created (or resumed) at ``now``: right away for an
    interval (the first run sets the baseline), the next match for cron."""
    if schedule.interval_seconds is not None:
        return now
    return next_slot(schedule, after=now, anchor=now)

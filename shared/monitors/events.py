"""The ``monitor.changed`` and ``monitor.failed`` webhooks: their subject and their body.

A monitor event's delivery subject is ``monitor:<monitor_id>:<run_id>``; it goes through the
same machinery as job and batch events (:mod:`shared.webhooks`): signed, retried, logged per
attempt, redeliverable. Like theirs, the body is rendered when each attempt is made, from the
stored records, so its download URLs are fresh.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from shared.constants import WEBHOOK_MONITOR_SUBJECT_PREFIX
from shared.errors import MonitorNotFound
from shared.jobs import JobError
from shared.monitors.models import Region, RunView
from shared.monitors.store import MonitorStore
from shared.monitors.views import file_url, render_run
from shared.storage.base import Storage


class MonitorEvent(BaseModel):
    """``data`` of a monitor event."""

    monitor_id: str
    name: str | None = None
    url: str = Field(description="The page the monitor captures.")
    run: RunView
    changed: bool | None = None
    changed_ratio: float | None = None
    regions: list[Region] = Field(default_factory=list)
    before_url: str | None = Field(default=None, description="The baseline's picture.")
    after_url: str | None = Field(default=None, description="This run's picture.")
    diff_url: str | None = Field(default=None, description="This run's picture, changes outlined.")
    consecutive_failures: int = 0
    error: JobError | None = None


def monitor_subject(monitor_id: str, run_id: str) -> str:
    """The webhook subject of ``run_id``'s event."""
    return f"{WEBHOOK_MONITOR_SUBJECT_PREFIX}{monitor_id}:{run_id}"


def monitor_run_of(subject: str) -> tuple[str, str] | None:
    """The (monitor id, run id) ``subject`` names, or ``None`` for other subjects."""
    if not subject.startswith(WEBHOOK_MONITOR_SUBJECT_PREFIX):
        return None
    monitor_id, _, run_id = subject[len(WEBHOOK_MONITOR_SUBJECT_PREFIX):].partition(":")
    return monitor_id, run_id


async def render_monitor_event(redis: aioredis.Redis, storage: Storage, subject: str, *,
                               url_ttl_seconds: int) -> tuple[MonitorEvent, datetime] | None:
    """The event of ``subject`` and when it happened; ``None`` once the monitor or the run
    is gone (nothing left to send)."""
    named = monitor_run_of(subject)
    if named is None:
        return None
    monitor_id, run_id = named
    store = MonitorStore(redis)
    try:
        state = await store.get(monitor_id)
    except MonitorNotFound:
        return None
    run = await store.get_run(monitor_id, run_id)
    if run is None:
        return None
    baseline = (await store.get_run(monitor_id, run.baseline_run_id)
                if run.baseline_run_id else None)
    view = render_run(run, storage, url_ttl_seconds=url_ttl_seconds)
    event = MonitorEvent(
        monitor_id=monitor_id, name=state.monitor.name, url=state.monitor.capture.url, run=view,
        changed=run.changed, changed_ratio=run.changed_ratio, regions=run.regions,
        before_url=None if baseline is None else file_url(
            storage, baseline.picture_key, url_ttl_seconds=url_ttl_seconds),
        after_url=view.picture_url, diff_url=view.diff_url,
        consecutive_failures=state.failures, error=run.error,
    )
    return event, run.finished_at or run.scheduled_at

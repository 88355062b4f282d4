"""Monitors and runs as clients see them (fresh download URLs minted per read)."""

from __future__ import annotations

from shared.monitors.models import MonitorRun, MonitorView, RunView
from shared.monitors.store import MonitorState, utc
from shared.storage.base import Storage


def render_monitor(state: MonitorState) -> MonitorView:
    """The client-facing view of a monitor and its state."""
    monitor = state.monitor
    return MonitorView(
        **monitor.model_dump(exclude={"api_key_id", "capture", "schedule", "retention"}),
        capture=monitor.capture.redacted(), schedule=monitor.schedule,
        retention=monitor.retention,
        next_run_at=None if state.next_run_at is None else utc(state.next_run_at),
        baseline_run_id=state.baseline_run_id, consecutive_failures=state.failures,
    )


def file_url(storage: Storage, key: str | None, *, url_ttl_seconds: int) -> str | None:
    """A download URL for ``key``, or ``None`` without one."""
    return None if key is None else storage.signed_url(key, expires_in=url_ttl_seconds).url


def render_run(run: MonitorRun, storage: Storage, *, url_ttl_seconds: int) -> RunView:
    """The client-facing view of ``run``: its picture and diff as download URLs."""
    return RunView(
        **run.model_dump(include={"id", "job_id", "status", "trigger", "scheduled_at",
                                  "finished_at", "changed", "changed_ratio", "baseline_run_id",
                                  "error"}),
        regions=run.regions,
        picture_url=file_url(storage, run.picture_key, url_ttl_seconds=url_ttl_seconds),
        diff_url=file_url(storage, run.diff_key, url_ttl_seconds=url_ttl_seconds),
    )

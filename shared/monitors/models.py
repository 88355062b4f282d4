"""The monitor model: what a client asks for (:class:`MonitorRequest`), what Shotline keeps
(:class:`Monitor`, :class:`MonitorRun`) and what clients see of them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.jobs import CaptureOptions, HttpUrlStr, JobError
from shared.options import MAX_HIDE_SELECTORS, Selector, Timezone

#: The shortest interval the model accepts; ``SHOTLINE_MONITOR_MIN_INTERVAL_SECONDS`` may
#: raise it (tests lower it to fire within seconds).
MIN_INTERVAL_FLOOR = 1
#: Longest interval: a year.
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


class NotifyOn(StrEnum):
    """Which runs send a webhook."""

    #: ``monitor.changed`` when a run differs from the baseline, ``monitor.failed`` after
    #: ``SHOTLINE_MONITOR_FAILURES_BEFORE_ALERT`` failures in a row.
    change = "change"
    #: ``monitor.changed`` after every successful run (its ``changed`` says whether anything
    #: did), ``monitor.failed`` as for ``change``.
    every = "every"
    #: ``monitor.failed`` only.
    failure = "failure"


class Schedule(BaseModel):
    """Either ``interval_seconds``, or ``cron`` with a ``timezone``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"interval_seconds": 3600},
                                        {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}]},
    )

    interval_seconds: int | None = Field(
        default=None, ge=MIN_INTERVAL_FLOOR, le=MAX_INTERVAL_SECONDS,
        description="Run every this many seconds (at least the server's minimum, 60 by default).",
    )
    cron: str | None = Field(
        default=None, min_length=9, max_length=200,
        description="A five-field cron expression, e.g. '0 * * * *' (every hour).",
    )
    timezone: Timezone = Field(default="UTC", description="IANA time zone of ``cron``.")

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, cron: str | None) -> str | None:
        if cron is not None and (len(cron.split()) != 5 or not croniter.is_valid(cron)):
            raise ValueError(f"{cron!r} is not a valid five-field cron expression (minute hour"
                             " day-of-month month day-of-week), e.g. '0 * * * *'")
        return cron

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("give exactly one of interval_seconds or cron")
        if self.cron is None and self.timezone != "UTC":
            raise ValueError("timezone applies to cron schedules only")
        return self


class Retention(BaseModel):
    """How much history a monitor keeps: the last ``keep_runs`` runs, none older than
    ``keep_days`` (when given). The baseline run is always kept."""

    model_config = ConfigDict(extra="forbid")

    keep_runs: int = Field(default=100, ge=1, le=10_000)
    keep_days: int | None = Field(default=None, ge=1, le=3650)


class MonitorSettings(BaseModel):
    """What a monitor does, besides its capture: shared by create and the stored record."""

    name: str | None = Field(default=None, max_length=200, description="A label for people.")
    schedule: Schedule
    threshold: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of pixels (0-1) that must change for a run to count as changed.",
    )
    mask_selectors: list[Selector] = Field(
        default_factory=list, max_length=MAX_HIDE_SELECTORS,
        description="Elements painted over at capture and ignored by the comparison (clocks,"
        " ads): their box stays, their content does not count.",
    )
    hide_selectors: list[Selector] = Field(
        default_factory=list, max_length=MAX_HIDE_SELECTORS,
        description="Elements removed (display: none) before capture.",
    )
    webhook_url: HttpUrlStr | None = Field(
        default=None, description="Where monitor.changed and monitor.failed are sent."
    )
    notify_on: NotifyOn = Field(default=NotifyOn.change)
    retention: Retention = Field(default_factory=Retention)


class MonitorRequest(MonitorSettings):
    """The body of ``POST /v1/monitors``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "capture": {"url": "https://example.com/pricing", "full_page": True},
            "schedule": {"interval_seconds": 3600},
            "threshold": 0.001,
            "mask_selectors": ["#clock"],
            "webhook_url": "https://example.com/hooks/shotline",
            "notify_on": "change",
        }]},
    )

    capture: CaptureOptions = Field(description="What to capture: any field of POST /v1/screenshots"
                                    " except webhook_url, cache_ttl and fresh.")
    paused: bool = Field(default=False, description="Create the monitor paused.")


class MonitorUpdate(BaseModel):
    """The body of ``PATCH /v1/monitors/{id}``: the fields to change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"threshold": 0.01, "schedule": {"cron": "0 * * * *"}}]},
    )

    name: str | None = Field(default=None, max_length=200)
    capture: CaptureOptions | None = None
    schedule: Schedule | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    mask_selectors: list[Selector] | None = Field(default=None, max_length=MAX_HIDE_SELECTORS)
    hide_selectors: list[Selector] | None = Field(default=None, max_length=MAX_HIDE_SELECTORS)
    webhook_url: HttpUrlStr | None = None
    notify_on: NotifyOn | None = None
    retention: Retention | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the request set (``null`` for ``name``/``webhook_url`` clears them)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class Monitor(MonitorSettings):
    """A monitor's configuration as stored (its moving state lives beside it in Redis)."""

    id: str
    api_key_id: str | None = None
    created_at: datetime
    updated_at: datetime
    capture: CaptureOptions
    paused: bool = False


def build_monitor(request: MonitorRequest, *, monitor_id: str, api_key_id: str | None,
                  now: datetime) -> Monitor:
    """The record of a monitor created by ``request``."""
    return Monitor(id=monitor_id, api_key_id=api_key_id, created_at=now, updated_at=now,
                   **request.model_dump(exclude={"capture", "schedule", "retention"}),
                   capture=request.capture, schedule=request.schedule,
                   retention=request.retention)


class RunStatus(StrEnum):
    """Where a run stands: its capture job's status, then the comparison's outcome."""

    queued = "queued"
    succeeded = "succeeded"
    failed = "failed"

    @property
    def is_terminal(self) -> bool:
        """True once the run has its outcome."""
        return self is not RunStatus.queued


class Region(BaseModel):
    """A changed area of the picture, in image pixels."""

    x: int
    y: int
    width: int
    height: int


class MonitorRun(BaseModel):
    """One run of a monitor: a capture job and how its picture compares with the baseline."""

    id: str
    monitor_id: str
    job_id: str
    status: RunStatus = RunStatus.queued
    trigger: str = Field(default="schedule", description="'schedule' or 'manual' (run now).")
    scheduled_at: datetime
    finished_at: datetime | None = None
    baseline_run_id: str | None = Field(
        default=None, description="The run this one was compared with (none: the first good run).")
    changed: bool | None = None
    changed_ratio: float | None = None
    hash_distance: int | None = Field(
        default=None, description="Perceptual-hash distance to the baseline (0: alike).")
    regions: list[Region] = Field(default_factory=list)
    picture_key: str | None = None
    diff_key: str | None = None
    error: JobError | None = None


class MonitorView(MonitorSettings):
    """A monitor as clients see it."""

    id: str
    created_at: datetime
    updated_at: datetime
    capture: CaptureOptions
    paused: bool
    next_run_at: datetime | None = Field(default=None, description="The next scheduled run.")
    baseline_run_id: str | None = None
    consecutive_failures: int = 0


class MonitorList(BaseModel):
    """``GET /v1/monitors``: the caller's monitors, oldest first, and the cursor of the next page."""

    monitors: list[MonitorView]
    next_cursor: str | None = None


class RunView(BaseModel):
    """A run as clients see it, with fresh download URLs."""

    id: str
    job_id: str
    status: RunStatus
    trigger: str
    scheduled_at: datetime
    finished_at: datetime | None = None
    changed: bool | None = None
    changed_ratio: float | None = None
    regions: list[Region] = Field(default_factory=list)
    picture_url: str | None = None
    diff_url: str | None = None
    baseline_run_id: str | None = None
    error: JobError | None = None


class RunList(BaseModel):
    """``GET /v1/monitors/{id}/runs``: newest first, and the cursor of the next page."""

    runs: list[RunView]
    next_cursor: str | None = None


class RunAccepted(BaseModel):
    """``POST /v1/monitors/{id}/run``: the run started now."""

    id: str
    job_id: str
    status: RunStatus
    scheduled_at: datetime


def new_monitor_id() -> str:
    """A fresh, unguessable monitor id."""
    return "mon_" + uuid.uuid4().hex


def slot_run_id(monitor_id: str, slot: float) -> str:
    """The id of the run (and of its capture job) for ``monitor_id``'s slot at ``slot``.

    Derived, not random: a scheduler that takes over a slot whose firing was interrupted
    finds the job already submitted under this id and does not submit a second one.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, f"shotline-monitor:{monitor_id}:{slot:.3f}").hex

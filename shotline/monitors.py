"""``client.monitors``: scheduled captures compared with the last good one.

>>> monitor = client.monitors.create("https://example.com/pricing", interval_seconds=3600,
...                                  mask_selectors=["#clock"], webhook_url="https://...")
>>> client.monitors.run(monitor.id)            # one run now, e.g. after a deploy
>>> [r.changed for r in client.monitors.runs(monitor.id).runs]

The same methods exist on :class:`Monitors` (``Client.monitors``) and :class:`AsyncMonitors`
(``AsyncClient.monitors``): ``create``, ``list``, ``get``, ``update``, ``pause``,
``resume``, ``delete``, ``run`` and ``runs``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from shotline.models import JobError
from shotline.wire import api_error, parse_response


class _Answer(BaseModel):
    """An API answer: fields this client does not know yet are kept as extras."""

    model_config = ConfigDict(extra="allow")


class Schedule(_Answer):
    """``interval_seconds``, or ``cron`` in ``timezone``."""

    interval_seconds: int | None = None
    cron: str | None = None
    timezone: str = "UTC"


class MonitorView(_Answer):
    """A monitor (``GET /v1/monitors/{id}``). ``capture`` holds its capture options."""

    id: str
    name: str | None = None
    capture: dict[str, Any]
    schedule: Schedule
    threshold: float = 0.0
    mask_selectors: list[str] = Field(default_factory=list)
    hide_selectors: list[str] = Field(default_factory=list)
    webhook_url: str | None = None
    notify_on: str = "change"
    paused: bool
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = None
    baseline_run_id: str | None = None
    consecutive_failures: int = 0


class MonitorList(_Answer):
    """A page of monitors and the cursor of the next."""

    monitors: list[MonitorView]
    next_cursor: str | None = None


class Region(_Answer):
    """A changed area of the picture, in image pixels."""

    x: int
    y: int
    width: int
    height: int


class RunView(_Answer):
    """One run of a monitor."""

    id: str
    job_id: str
    status: str
    scheduled_at: datetime
    finished_at: datetime | None = None
    changed: bool | None = None
    changed_ratio: float | None = None
    regions: list[Region] = Field(default_factory=list)
    picture_url: str | None = None
    diff_url: str | None = None
    error: JobError | None = None


class RunList(_Answer):
    """A page of runs, newest first, and the cursor of the next."""

    runs: list[RunView]
    next_cursor: str | None = None


class RunAccepted(_Answer):
    """A run started now (``POST /v1/monitors/{id}/run``)."""

    id: str
    job_id: str
    status: str
    scheduled_at: datetime

Send = Callable[..., httpx.Response]
AsyncSend = Callable[..., Awaitable[httpx.Response]]


def create_body(url: str, *, interval_seconds: int | None, cron: str | None, timezone: str,
                capture: dict[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/monitors`` from the client's keyword arguments."""
    schedule: dict[str, Any] = {}
    if interval_seconds is not None:
        schedule["interval_seconds"] = interval_seconds
    if cron is not None:
        schedule.update(cron=cron, timezone=timezone)
    return {"capture": {**(capture or {}), "url": url}, "schedule": schedule, **fields}


def _page(limit: int, cursor: str | None) -> dict[str, Any]:
    return {"limit": limit, **({"cursor": cursor} if cursor else {})}


def _deleted(response: httpx.Response) -> None:
    if response.is_error:
        raise api_error(response)


class Monitors:
    """The monitor endpoints, on a synchronous client."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def create(self, url: str, *, interval_seconds: int | None = None, cron: str | None = None,
               timezone: str = "UTC", capture: dict[str, Any] | None = None,
               **fields: Any) -> MonitorView:
        """Watch ``url``: every ``interval_seconds``, or on ``cron`` in ``timezone`` (give
        one).
        ``capture`` holds capture options (``full_page``...), ``fields`` the monitor's own
        (``threshold``, ``mask_selectors``, ``hide_selectors``, ``webhook_url``,
        ``notify_on``, ``name``, ``retention``, ``paused``)."""
        body = create_body(url, interval_seconds=interval_seconds, cron=cron, timezone=timezone,
                           capture=capture, fields=fields)
        return parse_response(MonitorView, self._send("POST", "/v1/monitors", json=body))

    def list(self, *, limit: int = 20, cursor: str | None = None) -> MonitorList:
        """A page of this key's monitors, oldest first."""
        return parse_response(MonitorList, self._send("GET", "/v1/monitors",
                                                      params=_page(limit, cursor)))

    def get(self, monitor_id: str) -> MonitorView:
        """One monitor, with its next run and baseline."""
        return parse_response(MonitorView, self._send("GET", f"/v1/monitors/{monitor_id}"))

    def update(self, monitor_id: str, **fields: Any) -> MonitorView:
        """Change the given fields (``schedule={...}``, ``threshold=...``...)."""
        return parse_response(MonitorView, self._send("PATCH", f"/v1/monitors/{monitor_id}",
                                                      json=fields))

    def pause(self, monitor_id: str) -> MonitorView:
        """Stop scheduled runs."""
        return parse_response(MonitorView, self._send("POST", f"/v1/monitors/{monitor_id}/pause"))

    def resume(self, monitor_id: str) -> MonitorView:
        """Start scheduled runs again."""
        return parse_response(MonitorView,
                              self._send("POST", f"/v1/monitors/{monitor_id}/resume"))

    def delete(self, monitor_id: str) -> None:
        """Delete the monitor and its history."""
        _deleted(self._send("DELETE", f"/v1/monitors/{monitor_id}"))

    def run(self, monitor_id: str) -> RunAccepted:
        """One run now, outside the schedule."""
        return parse_response(RunAccepted, self._send("POST", f"/v1/monitors/{monitor_id}/run"))

    def runs(self, monitor_id: str, *, limit: int = 20, cursor: str | None = None) -> RunList:
        """A page of the monitor's runs, newest first."""
        return parse_response(RunList, self._send("GET", f"/v1/monitors/{monitor_id}/runs",
                                                  params=_page(limit, cursor)))


class AsyncMonitors:
    """The monitor endpoints, on an asynchronous client."""

    def __init__(self, send: AsyncSend) -> None:
        self._send = send

    async def create(self, url: str, *, interval_seconds: int | None = None,
                     cron: str | None = None, timezone: str = "UTC",
                     capture: dict[str, Any] | None = None, **fields: Any) -> MonitorView:
        """See :meth:`Monitors.create`."""
        body = create_body(url, interval_seconds=interval_seconds, cron=cron, timezone=timezone,
                           capture=capture, fields=fields)
        return parse_response(MonitorView, await self._send("POST", "/v1/monitors", json=body))

    async def list(self, *, limit: int = 20, cursor: str | None = None) -> MonitorList:
        """See :meth:`Monitors.list`."""
        return parse_response(MonitorList, await self._send("GET", "/v1/monitors",
                                                            params=_page(limit, cursor)))

    async def get(self, monitor_id: str) -> MonitorView:
        """See :meth:`Monitors.get`."""
        return parse_response(MonitorView, await self._send("GET", f"/v1/monitors/{monitor_id}"))

    async def update(self, monitor_id: str, **fields: Any) -> MonitorView:
        """See :meth:`Monitors.update`."""
        return parse_response(MonitorView, await self._send(
            "PATCH", f"/v1/monitors/{monitor_id}", json=fields))

    async def pause(self, monitor_id: str) -> MonitorView:
        """See :meth:`Monitors.pause`."""
        return parse_response(MonitorView, await self._send(
            "POST", f"/v1/monitors/{monitor_id}/pause"))

    async def resume(self, monitor_id: str) -> MonitorView:
        """See :meth:`Monitors.resume`."""
        return parse_response(MonitorView, await self._send(
            "POST", f"/v1/monitors/{monitor_id}/resume"))

    async def delete(self, monitor_id: str) -> None:
        """See :meth:`Monitors.delete`."""
        _deleted(await self._send("DELETE", f"/v1/monitors/{monitor_id}"))

    async def run(self, monitor_id: str) -> RunAccepted:
        """See :meth:`Monitors.run`."""
        return parse_response(RunAccepted, await self._send(
            "POST", f"/v1/monitors/{monitor_id}/run"))

    async def runs(self, monitor_id: str, *, limit: int = 20,
                   cursor: str | None = None) -> RunList:
        """See :meth:`Monitors.runs`."""
        return parse_response(RunList, await self._send(
            "GET", f"/v1/monitors/{monitor_id}/runs", params=_page(limit, cursor)))

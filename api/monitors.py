"""Monitors at the edge: create, read, change, pause, run now; free of HTTP details.

The monitor store and run starter are built per call over the API's Redis client (no I/O
until used), so the API's composition root needs no new services for them.
"""

from __future__ import annotations

import contextlib
import time

import structlog

from api.services import Services, check_webhook
from shared.constants import MONITOR_DIFFS_PREFIX
from shared.engine_capabilities import check_engine_supports
from shared.errors import MonitorNotFound, MonitorRefused, StorageError, StoreUnavailable
from shared.jobs import CaptureOptions, ImageFormat, new_job_id, utcnow
from shared.monitors.models import (
    Monitor,
    MonitorList,
    MonitorRequest,
    MonitorUpdate,
    MonitorView,
    RunAccepted,
    RunList,
    Schedule,
    build_monitor,
    new_monitor_id,
)
from shared.monitors.runs import RunStarter
from shared.monitors.schedule import first_slot, next_slot
from shared.monitors.store import MonitorState, MonitorStore
from shared.monitors.views import render_monitor, render_run
from shared.principal import Principal
from shared.retention import StoredObjects, delete_objects
from shared.storage.destinations import router_of

log = structlog.get_logger("shotline.api")


def monitor_store(services: Services) -> MonitorStore:
    """The monitor store over the API's Redis client."""
    return MonitorStore(services.redis)


async def _check_capture(services: Services, capture: CaptureOptions) -> None:
    if capture.format is ImageFormat.pdf or capture.format.content_kind is not None:
        raise MonitorRefused(f"monitors compare pictures: format {capture.format.value} cannot"
                             " be monitored; use png, jpeg or webp", field="capture.format")
    if capture.url is None:  # an html or markdown document given once never changes
        raise MonitorRefused("monitors watch a page at a url: give capture.url (html and"
                             " markdown documents cannot be monitored)", field="capture.url")
    await services.policy.acheck_url(capture.url)
    check_engine_supports(services.settings.engine, capture)


def _check_schedule(services: Services, schedule: Schedule) -> None:
    minimum = services.settings.monitor_min_interval_seconds
    if schedule.interval_seconds is not None and schedule.interval_seconds < minimum:
        raise MonitorRefused(
            f"interval_seconds must be at least {minimum} on this server (got"
            f" {schedule.interval_seconds}); use a longer interval or a cron schedule",
            field="schedule.interval_seconds")


async def create_monitor(services: Services, request: MonitorRequest, *,
                         principal: Principal) -> MonitorView:
    """Check and record a new monitor; its first run is due at once (interval) or at the
    cron expression's next match."""
    store = monitor_store(services)
    limit = services.settings.monitor_max_per_key
    if await store.count(principal.key_id) >= limit:
        raise MonitorRefused(f"this key has {limit} monitors, the most allowed; delete one"
                             " first", field="monitors")
    _check_schedule(services, request.schedule)
    await _check_capture(services, request.capture)
    if request.webhook_url is not None:
        webhook_url = await check_webhook(services, request.webhook_url,
                                          api_key_id=principal.key_id)
        request = request.model_copy(update={"webhook_url": webhook_url})
    now = time.time()
    monitor = build_monitor(request, monitor_id=new_monitor_id(), api_key_id=principal.key_id,
                            now=utcnow())
    await store.create(monitor, first_slot=first_slot(monitor.schedule, now=now), anchor=now)
    log.info("monitor created", monitor_id=monitor.id, api_key_id=principal.key_id,
             url=monitor.capture.url, paused=monitor.paused)
    return render_monitor(await store.get(monitor.id))


async def owned_monitor(services: Services, principal: Principal,
                        monitor_id: str) -> MonitorState:
    """``monitor_id`` if ``principal`` owns it (:class:`MonitorNotFound` otherwise)."""
    state = await monitor_store(services).get(monitor_id)
    if state.monitor.api_key_id != principal.key_id:
        raise MonitorNotFound(f"no monitor with id {monitor_id!r}")
    return state


async def get_monitor(services: Services, principal: Principal, monitor_id: str) -> MonitorView:
    """The caller's monitor ``monitor_id``."""
    return render_monitor(await owned_monitor(services, principal, monitor_id))


async def list_monitors(services: Services, principal: Principal, *, limit: int,
                        cursor: str | None) -> MonitorList:
    """A page of the caller's monitors, oldest first."""
    store = monitor_store(services)
    try:
        after = None if cursor is None else float(cursor)
    except ValueError:
        raise MonitorRefused(f"cursor {cursor!r} is not one this API returned",
                             field="cursor") from None
    ids, next_cursor = await store.list_ids(principal.key_id, limit=limit, cursor=after)
    views = []
    for monitor_id in ids:
        try:
            views.append(render_monitor(await store.get(monitor_id)))
        except MonitorNotFound:
            continue  # deleted meanwhile
    return MonitorList(monitors=views,
                       next_cursor=None if next_cursor is None else repr(next_cursor))


async def update_monitor(services: Services, principal: Principal, monitor_id: str,
                         update: MonitorUpdate) -> MonitorView:
    """Change the fields ``update`` sets. A new schedule starts from now; a new capture,
    mask or hide list drops the baseline (the next good run becomes it, unchanged)."""
    state = await owned_monitor(services, principal, monitor_id)
    store = monitor_store(services)
    changes = update.changes()
    if update.schedule is not None:
        _check_schedule(services, update.schedule)
    if update.capture is not None:
        await _check_capture(services, update.capture)
    if changes.get("webhook_url") is not None:
        changes["webhook_url"] = await check_webhook(services, changes["webhook_url"],
                                                     api_key_id=principal.key_id)
    monitor = state.monitor.model_copy(update={**changes, "updated_at": utcnow()})
    monitor = Monitor.model_validate(monitor.model_dump())
    if update.schedule is not None:
        now = time.time()
        slot = None if monitor.paused else next_slot(monitor.schedule, after=now, anchor=now)
        await store.reschedule(monitor, next_slot=slot, anchor=now)
    else:
        await store.replace(monitor)
    if changes.keys() & {"capture", "mask_selectors", "hide_selectors"}:
        await store.reset_baseline(monitor.id)
    log.info("monitor updated", monitor_id=monitor.id, fields=sorted(changes))
    return render_monitor(await store.get(monitor.id))


async def set_paused(services: Services, principal: Principal, monitor_id: str, *,
                     paused: bool) -> MonitorView:
    """Pause (no more scheduled runs) or resume (the next run due now for an interval, at
    the next match for cron) the caller's monitor."""
    state = await owned_monitor(services, principal, monitor_id)
    store = monitor_store(services)
    if state.monitor.paused != paused:
        monitor = state.monitor.model_copy(update={"paused": paused, "updated_at": utcnow()})
        now = time.time()
        await store.reschedule(monitor, next_slot=None if paused else first_slot(
            monitor.schedule, now=now), anchor=None if paused else now)
        log.info("monitor paused" if paused else "monitor resumed", monitor_id=monitor_id)
    return render_monitor(await store.get(monitor_id))


async def delete_monitor(services: Services, principal: Principal, monitor_id: str) -> None:
    """Remove the caller's monitor with its schedule, its history and its diff images.

    Its runs' captures are ordinary jobs of the key: they stay until their retention or a
    ``DELETE /v1/jobs/{id}``, like any other capture."""
    state = await owned_monitor(services, principal, monitor_id)
    await monitor_store(services).delete(state.monitor)
    try:
        diffs = await delete_objects(router_of(services.storage), StoredObjects(
            keys=(), prefix=f"{MONITOR_DIFFS_PREFIX}{monitor_id}/"))
    except StorageError as exc:  # the monitor is gone; its leftover images are no error
        log.warning("could not delete a deleted monitor's diff images", monitor_id=monitor_id,
                    error=exc.message)
        diffs = 0
    log.info("monitor deleted", monitor_id=monitor_id, diff_images=diffs)


async def run_now(services: Services, principal: Principal, monitor_id: str) -> RunAccepted:
    """Start one run of the caller's monitor now, outside its schedule (charged to the
    key's monthly quota like any capture)."""
    state = await owned_monitor(services, principal, monitor_id)
    store = monitor_store(services)
    await services.quota.charge(principal)
    run_id = new_job_id()
    try:
        runs = await RunStarter(store, services.store, services.fair).start(
            [(state.monitor, run_id, time.time(), "manual")])
    except StoreUnavailable:
        with contextlib.suppress(StoreUnavailable):
            await services.quota.refund(principal)
        raise
    run = runs[0]
    return RunAccepted(id=run.id, job_id=run.job_id, status=run.status,
                       scheduled_at=run.scheduled_at)


async def list_runs(services: Services, principal: Principal, monitor_id: str, *, limit: int,
                    cursor: str | None) -> RunList:
    """A page of the monitor's runs, newest first, with download URLs."""
    await owned_monitor(services, principal, monitor_id)
    try:
        before = None if cursor is None else float(cursor)
    except ValueError:
        raise MonitorRefused(f"cursor {cursor!r} is not one this API returned",
                             field="cursor") from None
    runs, next_cursor = await monitor_store(services).runs(monitor_id, limit=limit,
                                                            cursor=before)
    ttl = services.settings.url_ttl_seconds
    return RunList(runs=[render_run(run, services.storage, url_ttl_seconds=ttl) for run in runs],
                   next_cursor=None if next_cursor is None else repr(next_cursor))

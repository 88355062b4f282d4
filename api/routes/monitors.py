"""``/v1/monitors``: captures on a schedule, compared with the last good one."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from api.deps import CallerDep, IdempotentDep, ServicesDep
from api.monitors import (
    create_monitor,
    delete_monitor,
    get_monitor,
    list_monitors,
    list_runs,
    run_now,
    set_paused,
    update_monitor,
)
from api.schemas import ErrorBody
from shared.errors import MonitorRefused
from shared.monitors.models import (
    MonitorList,
    MonitorRequest,
    MonitorUpdate,
    MonitorView,
    RunAccepted,
    RunList,
)

router = APIRouter(prefix="/v1/monitors", tags=["monitors"])

#: Most monitors or runs one page holds.
MAX_PAGE = 100

T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody},
    429: {"model": ErrorBody}, 503: {"model": ErrorBody},
}

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=64,
                                     description="next_cursor of the previous page.")]


async def _field_errors(call: Awaitable[T]) -> T:
    """``call``'s result; a :class:`MonitorRefused` becomes a 422 naming its field, shaped
    like every validation error."""
    try:
        return await call
    except MonitorRefused as exc:
        raise RequestValidationError([{
            "loc": ("body", *exc.field.split(".")), "msg": exc.message, "type": "value_error",
        }]) from exc


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MonitorView,
             responses={**_ERRORS, 409: {"model": ErrorBody}}, dependencies=[IdempotentDep],
             summary="Create a monitor")
async def post_monitor(body: MonitorRequest, request: Request, response: Response,
                       services: ServicesDep, caller: CallerDep) -> MonitorView:
    """Capture ``capture`` on ``schedule`` and compare each picture with the last good one;
    ``monitor.changed`` goes to ``webhook_url`` when more than ``threshold`` of the pixels
    changed. Interval schedules run first right away (that run is the baseline)."""
    view = await _field_errors(create_monitor(services, body, principal=caller))
    response.headers["Location"] = str(request.url_for("get_monitor_by_id", monitor_id=view.id))
    return view


@router.get("", response_model=MonitorList, responses=_ERRORS, summary="List monitors")
async def get_monitors(services: ServicesDep, caller: CallerDep, limit: Limit = 20,
                       cursor: Cursor = None) -> MonitorList:
    """The caller's monitors, oldest first; pass ``next_cursor`` back for the next page."""
    return await _field_errors(list_monitors(services, caller, limit=limit, cursor=cursor))


@router.get("/{monitor_id}", response_model=MonitorView, responses=_ERRORS,
            summary="Get a monitor", name="get_monitor_by_id")
async def get_one(monitor_id: str, services: ServicesDep, caller: CallerDep) -> MonitorView:
    """The monitor, its next run and its baseline."""
    return await get_monitor(services, caller, monitor_id)


@router.patch("/{monitor_id}", response_model=MonitorView, responses=_ERRORS,
              summary="Change a monitor")
async def patch_monitor(monitor_id: str, body: MonitorUpdate, services: ServicesDep,
                        caller: CallerDep) -> MonitorView:
    """Change the fields given. A new schedule counts from now; a new capture, mask or hide
    list starts a new baseline."""
    return await _field_errors(update_monitor(services, caller, monitor_id, body))


@router.delete("/{monitor_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS,
               summary="Delete a monitor")
async def remove_monitor(monitor_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """Delete the monitor, its schedule and its run history."""
    await delete_monitor(services, caller, monitor_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{monitor_id}/pause", response_model=MonitorView, responses=_ERRORS,
             summary="Pause a monitor")
async def pause_monitor(monitor_id: str, services: ServicesDep, caller: CallerDep) -> MonitorView:
    """No scheduled runs until resumed (run now still works)."""
    return await set_paused(services, caller, monitor_id, paused=True)


@router.post("/{monitor_id}/resume", response_model=MonitorView, responses=_ERRORS,
             summary="Resume a monitor")
async def resume_monitor(monitor_id: str, services: ServicesDep,
                         caller: CallerDep) -> MonitorView:
    """Scheduled runs again: an interval monitor runs right away, a cron one at its next match."""
    return await set_paused(services, caller, monitor_id, paused=False)


@router.post("/{monitor_id}/run", status_code=status.HTTP_202_ACCEPTED,
             response_model=RunAccepted, responses=_ERRORS, dependencies=[IdempotentDep],
             summary="Run a monitor now")
async def post_run(monitor_id: str, services: ServicesDep, caller: CallerDep) -> RunAccepted:
    """One run now, outside the schedule (after a deploy, say); follow it in ``/runs``."""
    return await run_now(services, caller, monitor_id)


@router.get("/{monitor_id}/runs", response_model=RunList, responses=_ERRORS,
            summary="List a monitor's runs")
async def get_runs(monitor_id: str, services: ServicesDep, caller: CallerDep,
                   limit: Limit = 20, cursor: Cursor = None) -> RunList:
    """Runs newest first: status, whether and how much changed, the changed regions, and
    download URLs of the picture and the diff."""
    return await _field_errors(list_runs(services, caller, monitor_id, limit=limit,
                                         cursor=cursor))

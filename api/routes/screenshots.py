"""``/v1/screenshots``: submit a capture, or capture and wait for the image."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import CallerDep, IdempotentDep, RequestIdDep, ServicesDep
from api.schemas import Accepted, ErrorBody
from api.services import submit_capture
from api.sync import capture_response, wait_for_job, wait_seconds
from shared.jobs import ScreenshotRequest

router = APIRouter(prefix="/v1/screenshots", tags=["screenshots"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody},
    429: {"model": ErrorBody}, 503: {"model": ErrorBody},
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={200: {"model": Accepted, "description": "Answered from the result cache"},
               **_ERRORS},
    dependencies=[IdempotentDep],
    summary="Submit a capture",
)
async def create_screenshot(
    body: ScreenshotRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    caller: CallerDep,
    request_id: RequestIdDep,
) -> Accepted:
    """Queue a capture of ``url``; poll ``status_url`` (also in ``Location``) for the result.

    A stored capture of the same options younger than ``cache_ttl`` answers at once: ``200``,
    ``status: succeeded``, ``cached: true``, nothing charged.
    """
    job = await submit_capture(services, body, principal=caller, request_id=request_id)
    status_url = str(request.url_for("get_job", job_id=job.id))
    response.headers["Location"] = status_url
    if job.status.is_terminal:
        response.status_code = status.HTTP_200_OK
    return Accepted(id=job.id, status=job.status, status_url=status_url, cached=job.cached)


@router.post(
    "/sync",
    response_class=StreamingResponse,
    response_model=None,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {},
                                 "application/pdf": {}},
                     "description": "The captured image (or PDF), streamed"},
               502: {"model": ErrorBody}, 504: {"model": ErrorBody}, **_ERRORS},
    dependencies=[IdempotentDep],
    summary="Capture and wait for the image",
)
async def create_screenshot_sync(
    body: ScreenshotRequest,
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    request_id: RequestIdDep,
) -> StreamingResponse | JSONResponse:
    """Capture ``url`` and answer with the image itself, waiting up to ``timeout_ms`` (plus a
    few seconds of queueing): ``504`` when the capture is not done by then (it goes on; the
    error names the job), the failure as JSON (an engine's upstream status forwarded)."""
    job_id: str | None = getattr(request.state, "replay_job_id", None)
    if job_id is None:
        job_id = (await submit_capture(services, body, principal=caller, request_id=request_id)).id
    job = await wait_for_job(services, caller, job_id,
                             timeout=wait_seconds(body))
    return await capture_response(request, services, job)

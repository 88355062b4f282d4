"""``/v1/screenshots``: submit a capture."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api.deps import RequestIdDep, ServicesDep
from api.schemas import Accepted, ErrorBody
from api.services import submit_capture
from shared.jobs import ScreenshotRequest

router = APIRouter(prefix="/v1/screenshots", tags=["screenshots"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Submit a capture",
)
async def create_screenshot(
    body: ScreenshotRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    request_id: RequestIdDep,
) -> Accepted:
    """Queue a capture of ``url``; poll ``status_url`` (also in ``Location``) for the result."""
    job = await submit_capture(services, body, request_id=request_id)
    status_url = str(request.url_for("get_job", job_id=job.id))
    response.headers["Location"] = status_url
    return Accepted(id=job.id, status=job.status, status_url=status_url)

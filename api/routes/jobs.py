"""``/v1/jobs``: job status and result download."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from api.deps import CallerDep, ServicesDep
from api.schemas import ErrorBody, JobView
from api.services import get_owned_job, job_view, result_url

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=JobView,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 429: {"model": ErrorBody},
               503: {"model": ErrorBody}},
    summary="Get a job's status",
)
async def get_job(job_id: str, services: ServicesDep, caller: CallerDep) -> JobView:
    """The job's status record; when it succeeded, ``result.url`` is a fresh signed URL."""
    return job_view(services, await get_owned_job(services, caller, job_id))


@router.get(
    "/{job_id}/result",
    status_code=302,
    response_class=RedirectResponse,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody},
               429: {"model": ErrorBody}},
    summary="Download a job's result",
)
async def get_job_result(job_id: str, services: ServicesDep, caller: CallerDep) -> RedirectResponse:
    """302 to a fresh download URL; 409 while the job has no result."""
    return RedirectResponse(await result_url(services, caller, job_id), status_code=302)

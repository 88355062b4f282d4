"""``/v1/jobs``: job status and result download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import RedirectResponse

from api.deps import CallerDep, ServicesDep
from api.schemas import ErrorBody, JobList, JobView
from api.services import delete_owned_job, get_owned_job, job_view, recent_jobs, result_url

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


#: Most jobs one ``GET /v1/jobs`` returns.
MAX_LIST_LIMIT = 100


@router.get(
    "",
    response_model=JobList,
    responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="List recent jobs",
)
async def list_jobs(
    services: ServicesDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="How many jobs.")] = 20,
) -> JobList:
    """The caller's most recent jobs, newest first (each with a fresh download URL)."""
    return JobList(jobs=await recent_jobs(services, api_key_id=caller.key_id, limit=limit))


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
               410: {"model": ErrorBody, "description": "The retention period deleted the result."},
               429: {"model": ErrorBody}},
    summary="Download a job's result",
)
async def get_job_result(job_id: str, services: ServicesDep, caller: CallerDep) -> RedirectResponse:
    """302 to a fresh download URL; 409 while the job has no result."""
    return RedirectResponse(await result_url(services, caller, job_id), status_code=302)


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody},
               429: {"model": ErrorBody}, 502: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Delete a job and its files",
)
async def delete_job(job_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """Delete the job's stored files (picture, thumbnail or poster, content outputs, video)
    and then its record: 204, also when it was already deleted. Another key's job is 404;
    a job still queued or running is 409 (delete it once it has ended). A job answered from
    another job's capture (``cached``) loses its record only: the files belong to that job."""
    await delete_owned_job(services, caller, job_id)
    return Response(status_code=204)

"""``/v1/jobs``: job status and result download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse

from api.deps import ServicesDep
from api.schemas import ErrorBody, JobList, JobView
from api.services import job_view, recent_jobs, result_url

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
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="How many jobs.")] = 20,
) -> JobList:
    """The caller's most recent jobs, newest first (each with a fresh download URL)."""
    # Without API keys every job belongs to the anonymous owner.
    return JobList(jobs=await recent_jobs(services, api_key_id=None, limit=limit))


@router.get(
    "/{job_id}",
    response_model=JobView,
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Get a job's status",
)
async def get_job(job_id: str, services: ServicesDep) -> JobView:
    """The job's status record; when it succeeded, ``result.url`` is a fresh signed URL."""
    return job_view(services, await services.store.get(job_id))


@router.get(
    "/{job_id}/result",
    status_code=302,
    response_class=RedirectResponse,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Download a job's result",
)
async def get_job_result(job_id: str, services: ServicesDep) -> RedirectResponse:
    """302 to a fresh download URL; 409 while the job has no result."""
    return RedirectResponse(await result_url(services, job_id), status_code=302)

"""``/v1/jobs/{id}/deliveries``: a job's webhook attempts, and sending it again."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deliveries import delivery_log, redeliver
from api.deps import CallerDep, IdempotentDep, ServicesDep
from api.schemas import ErrorBody
from shared.webhooks.models import DeliveryLog

router = APIRouter(prefix="/v1/jobs", tags=["webhooks"])


@router.get(
    "/{job_id}/deliveries",
    response_model=DeliveryLog,
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="List a job's webhook delivery attempts",
)
async def get_deliveries(job_id: str, services: ServicesDep, caller: CallerDep) -> DeliveryLog:
    """The webhook's state (``none``, ``waiting``, ``scheduled``, ``delivered``, ``failed``,
    ``disabled``), when the next attempt is due, and every attempt: time, HTTP status or
    error, duration."""
    return await delivery_log(services, caller, job_id)


@router.post(
    "/{job_id}/deliveries/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryLog,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Send a job's webhook again",
    dependencies=[IdempotentDep],
)
async def post_redeliver(job_id: str, services: ServicesDep, caller: CallerDep) -> DeliveryLog:
    """Send the job's event again now (same ``webhook-id``) with a fresh retry schedule; an
    endpoint disabled by a 410 is enabled again. 409 while the job runs or without webhook."""
    return await redeliver(services, caller, job_id)

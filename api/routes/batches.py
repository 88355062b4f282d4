"""``/v1/batches``: many captures with shared options, followed together."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api.batches import batch_delivery_log, batch_view, redeliver_batch, submit_batch
from api.deps import CallerDep, IdempotentDep, RequestIdDep, ServicesDep, enforce_rate_limit
from api.schemas import BatchAccepted, BatchView, ErrorBody
from shared.batches import BatchRequest
from shared.webhooks.models import BatchDeliveryLog

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses={401: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody},
               429: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    dependencies=[IdempotentDep],
    summary="Submit a batch of captures",
)
async def create_batch(
    body: BatchRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    caller: CallerDep,
    request_id: RequestIdDep,
) -> BatchAccepted:
    """Capture up to 100 URLs with the same options; follow them at ``status_url``. A URL the
    URL policy refuses becomes a failed job of the batch instead of failing the batch. Counts
    as one request per URL against the rate limit."""
    if len(body.urls) > 1:
        await enforce_rate_limit(request, services, caller, cost=len(body.urls) - 1)
    batch = await submit_batch(services, body, principal=caller, request_id=request_id)
    status_url = str(request.url_for("get_batch", batch_id=batch.id))
    response.headers["Location"] = status_url
    return BatchAccepted(id=batch.id, status_url=status_url, total=len(batch.job_ids),
                         job_ids=batch.job_ids)


@router.get(
    "/{batch_id}",
    response_model=BatchView,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    summary="Get a batch",
)
async def get_batch(batch_id: str, request: Request, services: ServicesDep,
                    caller: CallerDep) -> BatchView:
    """Counts per status, whether every job has ended, and each job in brief."""
    return await batch_view(services, caller, batch_id,
                            lambda job_id: str(request.url_for("get_job", job_id=job_id)))


@router.get(
    "/{batch_id}/deliveries",
    response_model=BatchDeliveryLog,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    tags=["webhooks"],
    summary="List a batch's webhook delivery attempts",
)
async def get_batch_deliveries(batch_id: str, services: ServicesDep,
                               caller: CallerDep) -> BatchDeliveryLog:
    """The ``batch.completed`` webhook's state (``none``, ``waiting``, ``scheduled``,
    ``delivered``, ``failed``, ``disabled``), when the next attempt is due, and every attempt:
    time, HTTP status or error, duration."""
    return await batch_delivery_log(services, caller, batch_id)


@router.post(
    "/{batch_id}/deliveries/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchDeliveryLog,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody},
               503: {"model": ErrorBody}},
    tags=["webhooks"],
    summary="Send a batch's webhook again",
    dependencies=[IdempotentDep],
)
async def post_batch_redeliver(batch_id: str, services: ServicesDep,
                               caller: CallerDep) -> BatchDeliveryLog:
    """Send the batch's ``batch.completed`` again now (same ``webhook-id``) with a fresh retry
    schedule; an endpoint disabled by a 410 is enabled again. 409 while jobs of the batch are
    still running, or without webhook."""
    return await redeliver_batch(services, caller, batch_id)

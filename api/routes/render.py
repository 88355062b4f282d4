"""``/v1/render``: a capture behind a signed link, for ``<img src=…>``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import RequestIdDep, ServicesDep, enforce_rate_limit
from api.render import link_parameters, render_request, verify_link
from api.schemas import ErrorBody
from api.services import submit_capture
from api.sync import capture_response, wait_for_job, wait_seconds

router = APIRouter(prefix="/v1/render", tags=["render"])


@router.get(
    "",
    response_class=StreamingResponse,
    response_model=None,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {},
                                 "application/pdf": {}},
                     "description": "The captured image, from the cache when fresh"},
               403: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody},
               502: {"model": ErrorBody}, 504: {"model": ErrorBody}},
    summary="Capture through a signed link",
    openapi_extra={"parameters": link_parameters()},
)
async def render(request: Request, services: ServicesDep, request_id: RequestIdDep
                 ) -> StreamingResponse | JSONResponse:
    """The image for the capture options in the query (``url`` and any other field of
    ``POST /v1/screenshots``), signed with ``key_id``, ``expires`` and ``signature``:
    HMAC-SHA256 under the key's signing secret of the sorted, percent-encoded query. A
    tampered, expired or revoked link is ``403``; an invalid option (checked after the
    signature) ``422``. Options that need a list or an object (``headers``, ``cookies``,
    ``hide_selectors``...) cannot be given in a link, and the whole link must fit the
    server's request line (80 KiB with uvicorn)."""
    params = request.query_params.multi_items()
    caller = await verify_link(services, params)
    await enforce_rate_limit(request, services, caller)
    body = render_request(params)
    job = await submit_capture(services, body, principal=caller, request_id=request_id)
    job = await wait_for_job(services, caller, job.id,
                             timeout=wait_seconds(body))
    response = await capture_response(request, services, job)
    if isinstance(response, StreamingResponse):
        response.headers["Cache-Control"] = "private, max-age=300"
    return response

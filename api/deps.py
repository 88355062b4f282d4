"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import authenticate
from api.ratelimit import RateLimitState
from api.services import Services
from shared.errors import RateLimited
from shared.metrics import record_job_submitted
from shared.principal import Principal
from shared.scripts import run_scripts
from shared.status_store import redis_errors

#: Paths whose POSTs submit capture jobs (counted as refused when rate limited).
SUBMIT_PATHS = ("/v1/screenshots", "/v1/batches", "/v1/render")

#: Where the rate-limit state of a request is kept for :class:`api.middleware.RateLimitHeadersMiddleware`.
RATE_LIMIT_STATE = "rate_limit"
#: Set on a request's state once it was admitted (:func:`admit`).
ADMITTED = "admitted"


# The dependencies are ``async def`` although they await nothing: FastAPI runs a plain
# ``def`` dependency in a worker thread, a thread hand-off per request for a getattr
# (about 7 % of the API's CPU per submit in a py-spy profile).


async def get_services(request: Request) -> Services:
    """The services built in the app's lifespan."""
    services: Services = request.app.state.services
    return services


async def get_request_id(request: Request) -> str | None:
    """The correlation id set by :class:`api.middleware.RequestIdMiddleware`."""
    return getattr(request.state, "request_id", None)


ServicesDep = Annotated[Services, Depends(get_services)]
RequestIdDep = Annotated[str | None, Depends(get_request_id)]


# Declared for the OpenAPI document (the "Authorize" button of /docs); the key itself is read
# by api.auth.credential, which accepts either header.
_BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")


async def get_principal(
    request: Request,
    services: ServicesDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    _api_key: Annotated[str | None, Depends(_API_KEY)],
) -> Principal:
    """The caller's API key (401 when one is required and missing, unknown or revoked)."""
    return await authenticate(services.settings, services.keys, request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def enforce_rate_limit(request: Request, services: Services, principal: Principal, *,
                             cost: int = 1) -> None:
    """Count the request (as ``cost`` requests) against ``principal``'s rate limit;
    :class:`RateLimited` (429) when over it. The ``X-RateLimit-*`` headers go on the
    response either way."""
    check_rate_limit(request, services, await services.limiter.hit(principal, cost=cost))


def check_rate_limit(request: Request, services: Services, state: RateLimitState) -> None:
    """Keep ``state`` for the ``X-RateLimit-*`` headers; :class:`RateLimited` when the hit
    was refused."""
    setattr(request.state, RATE_LIMIT_STATE, state)
    if not state.allowed:
        if request.method == "POST" and request.url.path.startswith(SUBMIT_PATHS):
            record_job_submitted("refused", reason=RateLimited.code, engine=services.settings.engine,
                                 format="unknown")
        raise RateLimited(
            f"Rate limit of {state.limit} requests exceeded; retry in {state.retry_after} s.",
            retry_after=state.retry_after,
        )


async def admit(request: Request, services: Services, principal: Principal, *,
                idempotent: bool) -> None:
    """Count the request against ``principal``'s rate limit and, when ``idempotent``, look up
    its ``Idempotency-Key`` (taking it, or replaying its answer): one Redis round trip for
    both (the key itself is checked by :func:`get_principal`, from the key cache mostly).

    Once per request: the idempotency dependency admits first, the caller's dependency then
    finds it done. A refused request (429) never replays: a key it took is released by the
    middleware (429s are not stored), as if it had never been taken.
    """
    if getattr(request.state, ADMITTED, False):
        return
    setattr(request.state, ADMITTED, True)
    lookup = await services.idempotency.prepare(request, owner=principal.owner) if idempotent else None
    hit = services.limiter.prepare(principal)
    with redis_errors():
        answers = await run_scripts(services.redis, [
            *hit.calls, *([lookup.call] if lookup is not None else [])])
    state = hit.state(answers[:2])
    if lookup is not None and not state.allowed and services.idempotency.took(answers[2]):
        request.state.idempotency = lookup.ticket  # released by the middleware
    check_rate_limit(request, services, state)
    if lookup is not None:
        services.idempotency.settle(request, lookup, answers[2])


async def rate_limited_principal(
    request: Request, services: ServicesDep, principal: PrincipalDep
) -> Principal:
    """The caller, after counting the request against its rate limit."""
    await admit(request, services, principal, idempotent=False)
    return principal


#: The authenticated, rate-limited caller: what every ``/v1`` route of a key uses.
CallerDep = Annotated[Principal, Depends(rate_limited_principal)]


async def idempotent(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    _key: Annotated[str | None, Header(
        alias="Idempotency-Key", min_length=1, max_length=255,
        description="Retry safely: the first response to this key is replayed for 24 h.",
    )] = None,
) -> None:
    """Honour ``Idempotency-Key`` (replay, 409, 422), scoped to the caller's key, and count
    the request against the caller's rate limit, in one round trip (:func:`admit`)."""
    await admit(request, services, principal, idempotent=True)


IdempotentDep = Depends(idempotent)

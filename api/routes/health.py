"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from shared.errors import ShotlineError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses={503: {"description": "not ready"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Redis and storage reachable: 200, otherwise 503 naming what is down."""
    checks: dict[str, str] = {}
    for name, probe in (("redis", services.store.ping), ("storage", services.storage.check)):
        try:
            await probe()
            checks[name] = "ok"
        except ShotlineError as exc:
            checks[name] = exc.message
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": "5"},
    )

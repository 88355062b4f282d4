"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.services import Services


def get_services(request: Request) -> Services:
    """The services built in the app's lifespan."""
    services: Services = request.app.state.services
    return services


def get_request_id(request: Request) -> str | None:
    """The correlation id set by :class:`api.middleware.RequestIdMiddleware`."""
    return getattr(request.state, "request_id", None)


ServicesDep = Annotated[Services, Depends(get_services)]
RequestIdDep = Annotated[str | None, Depends(get_request_id)]

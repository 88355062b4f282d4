"""Pure ASGI middleware: the correlation id of every request, rate-limit headers, the request
body size limit."""

from __future__ import annotations

import uuid

import structlog
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from shared.correlation import parse_traceparent, valid_request_id


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` from the caller (or makes one), binds it to the log context,
    keeps it in ``request.state.request_id`` and returns it in the response headers.

    A valid W3C ``traceparent`` from the caller is bound too (and so travels with the job).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = dict(scope["headers"])
        incoming = received.get(b"x-request-id", b"").decode("latin-1")
        request_id = valid_request_id(incoming) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        context = {"request_id": request_id}
        traceparent = parse_traceparent(received.get(b"traceparent", b"").decode("latin-1") or None)
        if traceparent is not None:
            context["traceparent"] = traceparent

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(**context):
            await self.app(scope, receive, send_with_id)


class RateLimitHeadersMiddleware:
    """Adds ``X-RateLimit-Limit/Remaining/Reset`` to every response of a rate-limited request
    (errors included), from the state the rate-limit dependency left in the scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state", {}).get("rate_limit")
                if state is not None:
                    headers = list(message.get("headers", []))
                    headers += [(k.lower().encode(), v.encode()) for k, v in state.headers().items()]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_limits)


class BodySizeLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` with 413, in the API's JSON error shape.

    A request that declares a larger ``Content-Length`` is answered before any of its body
    is read; a body without one (chunked) is counted as it arrives and refused once past
    the limit (the route reading it gets an HTTP 413 error, which the error handlers turn
    into the JSON shape). Either way no more than ``max_bytes`` are ever buffered.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request body is larger than {self.max_bytes} bytes"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(Request(scope), 413, "payload_too_large", message)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, detail=message)
            return event

        await self.app(scope, counted_receive, send)

"""One correlation id for a capture's whole life: the request id and the W3C trace context.

structlog's context variables are the single place these live while a request or a task
runs, so every log line carries them:

- the API binds them per request (:class:`api.middleware.RequestIdMiddleware`);
- :func:`task_headers` copies them into the Celery task's headers when a job is enqueued;
- the worker binds them again for the task's duration (:func:`bind_task_context`);
- outgoing calls (SnapAPI, webhooks) forward them as HTTP headers (:func:`http_headers`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import structlog

from shared.constants import REQUEST_ID_HEADER, TRACEPARENT_HEADER

#: Context keys that travel with a job, also used as the Celery task header names.
REQUEST_ID: Final = "request_id"
TRACEPARENT: Final = "traceparent"
CORRELATION_KEYS: Final = (REQUEST_ID, TRACEPARENT)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# version-traceid-parentid-flags; versions above 00 may append fields (W3C Trace Context §3.2).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def valid_request_id(value: str | None) -> str | None:
    """``value`` when it is a usable request id (1-128 of ``A-Za-z0-9._:-``), else ``None``."""
    return value if value is not None and _VALID_REQUEST_ID.match(value) else None


def parse_traceparent(value: str | None) -> str | None:
    """``value`` when it is a valid W3C ``traceparent`` header, else ``None``.

    Refused: version ``ff``, all-zero trace or parent ids, extra fields on version ``00``.
    """
    if value is None or len(value) > 512:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        return None
    if version == "00" and rest:
        return None
    return match.group(0)


def current() -> dict[str, str]:
    """The correlation values bound in the current context (absent keys left out)."""
    context = structlog.contextvars.get_contextvars()
    return {key: context[key] for key in CORRELATION_KEYS if isinstance(context.get(key), str)}


def task_headers(*, request_id: str | None, traceparent: str | None = None) -> dict[str, str]:
    """Celery task headers carrying ``request_id`` and ``traceparent`` (default: the current
    trace context; given when the task is sent outside the request, by the dispatcher)."""
    headers = current()
    headers.pop(REQUEST_ID, None)
    if request_id:
        headers[REQUEST_ID] = request_id
    if traceparent:
        headers[TRACEPARENT] = traceparent
    return headers


def bind_task_context(request: Any) -> None:
    """Bind the correlation values found in a Celery task request's headers.

    ``request`` is the task's ``self.request``; custom headers are read with ``.get`` (Celery
    5 merges them into the request context and keeps them across retries).
    """
    values: dict[str, str] = {}
    for key in CORRELATION_KEYS:
        value = request.get(key)
        if isinstance(value, str):
            valid = valid_request_id(value) if key == REQUEST_ID else parse_traceparent(value)
            if valid is not None:
                values[key] = valid
    task_id = getattr(request, "id", None)
    if isinstance(task_id, str):
        values["task_id"] = task_id
    structlog.contextvars.bind_contextvars(**values)


def unbind_task_context() -> None:
    """Forget what :func:`bind_task_context` bound (when the task ends)."""
    structlog.contextvars.unbind_contextvars(*CORRELATION_KEYS, "task_id")


def http_headers(*, request_id: str | None = None) -> dict[str, str]:
    """HTTP headers forwarding the correlation to a third party (SnapAPI, webhook receivers).

    ``request_id`` when given, else the bound one, as ``X-Request-ID``; the bound
    ``traceparent`` unchanged.
    """
    bound: Mapping[str, str] = current()
    headers: dict[str, str] = {}
    request_id = request_id or bound.get(REQUEST_ID)
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    if TRACEPARENT in bound:
        headers[TRACEPARENT_HEADER] = bound[TRACEPARENT]
    return headers

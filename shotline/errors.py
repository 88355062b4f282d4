"""The Python client's errors: what :mod:`shotline.client` raises.

Owned by the client package (it installs without the server); they extend the project's
one hierarchy, :class:`shared.errors.ShotlineError` (a dependency-free module that ships with
the client), so ``except ShotlineError`` catches client and server errors alike.
"""

from __future__ import annotations

from typing import Any

from shared.errors import ShotlineError


class ApiError(ShotlineError):
    """Raised by the Python client when the API answers with an error (or cannot be reached).

    Carries the API's error body: ``code`` (``error``), ``message``, ``request_id`` and
    ``details``, plus the HTTP ``status`` and any ``Retry-After`` in seconds.
    """

    code = "api_error"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        details: list[dict[str, object]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.status = status
        self.request_id = request_id
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.code}: {self.message}{suffix}"


class ApiAuthError(ApiError):
    """Raised by the client when the API refuses the credentials (missing, wrong or revoked key)."""


class ApiNotFound(ApiError):
    """Raised by the client when the job, batch or file does not exist (or belongs to another key)."""


class ApiInvalidRequest(ApiError):
    """Raised by the client when the API refuses the request's content (``details`` names fields)."""


class ApiConflict(ApiError):
    """Raised by the client when the request conflicts with the current state (result not ready)."""


class ApiRateLimited(ApiError):
    """Raised by the client when the key is over its rate limit or quota; see ``retry_after``."""


class ApiUnavailable(ApiError):
    """Raised by the client when the API is down, overloaded, timed out or unreachable."""


class JobFailed(ShotlineError):
    """Raised by the client when a job it waited for ended ``failed``; ``job`` holds the record
    (a :class:`shotline.models.JobView`) and ``error_code`` its ``error.code``."""

    code = "job_failed"

    def __init__(self, message: str, *, job: Any, error_code: str | None = None) -> None:
        super().__init__(message)
        self.job = job
        self.error_code = error_code


class JobWaitTimeout(ShotlineError):
    """Raised by the client when a job is still not finished at the end of a wait."""

    code = "wait_timeout"

"""The one error hierarchy of Shotline. HTTP status codes live in ``api/`` only."""

from __future__ import annotations


class ShotlineError(Exception):
    """Raised for every error Shotline itself signals; the base of the hierarchy."""

    code: str = "error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message or self.__doc__ or self.code


class ConfigurationError(ShotlineError):
    """Raised when settings are inconsistent or a required setting is missing."""

    code = "configuration_error"


class StoreUnavailable(ShotlineError):
    """Raised when Redis (status records, broker) cannot be reached."""

    code = "service_unavailable"


class JobNotFound(ShotlineError):
    """Raised when a job id names no status record (unknown or expired)."""

    code = "not_found"


class ResultGone(ShotlineError):
    """Raised when a job's result is asked for after its files were deleted (retention)."""

    code = "gone"


class JobNotFinished(ShotlineError):
    """Raised when a job's result is asked for before the job succeeded."""

    code = "job_not_finished"


class JobHasNoResult(ShotlineError):
    """Raised when a failed job's result is asked for: it failed, there is none to download."""

    code = "job_failed"


class UrlBlocked(ShotlineError):
    """Raised when a URL or address is refused by the URL policy."""

    code = "url_blocked"
    #: The request field the refused URL came from.
    field: str = "url"


class WebhookUrlBlocked(UrlBlocked):
    """Raised when a request's ``webhook_url`` is refused by the URL policy."""

    field = "webhook_url"


class BaseUrlBlocked(UrlBlocked):
    """Raised when a request's ``base_url`` (of its html or markdown) is refused by the URL policy."""

    field = "base_url"


class HostUnresolvable(UrlBlocked):
    """Raised when a host name does not resolve, so its addresses cannot be checked (nothing
    was blocked: the name is wrong, or its DNS is down)."""

    code = "host_unresolvable"


class InvalidSignature(ShotlineError):
    """Raised when a signed download link was tampered with or has expired."""

    code = "invalid_signature"


class StorageError(ShotlineError):
    """Raised when a storage backend cannot store or find an object."""

    code = "storage_error"


class CaptureError(ShotlineError):
    """Raised when a capture does not produce a result; ``code`` ends up in ``job.error.code``."""

    code = "engine_error"
    #: Whether trying again later may succeed (timeouts, 429/5xx upstream, crashes).
    retryable: bool = False
    #: Whether the customer's page caused it (it did not answer in time): tried again only as
    #: often as the request's ``retries`` asks, never on Shotline's own initiative.
    page_fault: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class CaptureTimeout(CaptureError):
    """Raised when a capture does not finish within its ``timeout_ms``."""

    code = "timeout"
    retryable = True
    page_fault = True


class NavigationFailed(CaptureError):
    """Raised when the page cannot be loaded at all (DNS, connection refused, TLS...)."""

    code = "navigation_failed"


class HttpErrorStatus(CaptureError):
    """Raised when the main document answers 4xx or 5xx; ``status`` holds the code."""

    code = "http_error"


class EngineError(CaptureError):
    """Raised when the engine itself fails (renderer crash, browser gone, bad upstream answer)."""

    code = "engine_error"
    retryable = True


class EngineRejected(CaptureError):
    """Raised when the upstream engine refuses the request for good (SnapAPI 4xx)."""

    code = "engine_rejected"


class CaptureUrlBlocked(CaptureError):
    """Raised when the page (or its top-level navigation) is refused by the URL policy."""

    code = "url_blocked"


class CaptureHostUnresolvable(CaptureError):
    """Raised when the page's host name does not resolve (misspelt, or its DNS is down)."""

    code = "host_unresolvable"


class ResultTooLarge(CaptureError):
    """Raised when a capture's output exceeds the configured byte limit."""

    code = "result_too_large"


class ResultNotStored(CaptureError):
    """Raised when a capture succeeded but its result could not be written to storage."""

    code = "storage_error"
    retryable = True


class SelectorNotFound(CaptureError):
    """Raised when ``selector`` or ``wait_for_selector`` matches nothing in time."""

    code = "selector_not_found"


class OptionNotSupported(ShotlineError):
    """Raised when the configured engine cannot honour a capture option; ``fields`` names them."""

    code = "option_not_supported"

    def __init__(self, message: str = "", *, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class DocumentTooLarge(ShotlineError):
    """Raised when an inline document (``html``, ``markdown``) is above its size limit."""

    code = "payload_too_large"

    def __init__(self, message: str = "", *, field: str) -> None:
        super().__init__(message)
        self.field = field


class PageScriptFailed(CaptureError):
    """Raised when the request's ``js`` throws or does not parse in the page."""

    code = "script_error"


class ContentCheckFailed(CaptureError):
    """Raised when the page's text fails ``fail_if_content_contains`` / ``fail_if_content_missing``."""

    code = "content_check_failed"


class PrintBlocked(CaptureError):
    """Raised when the page's own ``window.print()`` keeps Chromium from printing the PDF."""

    code = "page_printing"


class JobLost(CaptureError):
    """Raised when a job cannot be recovered after its workers died (``error.code`` lost)."""

    code = "lost"


# --- Raised at the multi-tenant API edge ------------------------------------------------


class AuthenticationFailed(ShotlineError):
    """Raised when a request carries no API key, an unknown one or a revoked one."""

    code = "unauthorized"


class ApiKeyNotFound(ShotlineError):
    """Raised when an API key id names no key."""

    code = "not_found"


class BatchNotFound(ShotlineError):
    """Raised when a batch id names no batch the caller owns (unknown or expired)."""

    code = "not_found"


class BatchNotFinished(ShotlineError):
    """Raised when a batch's webhook is to be resent before every job of the batch has ended."""

    code = "batch_not_finished"


class RateLimited(ShotlineError):
    """Raised when a key is over its request rate; ``retry_after`` says when to come back."""

    code = "rate_limited"

    def __init__(self, message: str = "", *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    """Raised when a key has used up its monthly capture quota."""

    code = "quota_exceeded"


class NoFreeSlot(ShotlineError):
    """Raised when a job's attempt needs a fleet slot (:mod:`shared.semaphore`) and every
    slot is held: the job stays queued, nothing changed."""

    code = "no_free_slot"


class IdempotencyConflict(ShotlineError):
    """Raised when a request reuses an ``Idempotency-Key`` whose first request is still running."""

    code = "idempotency_conflict"


class IdempotencyKeyReused(ShotlineError):
    """Raised when an ``Idempotency-Key`` comes back with a different request."""

    code = "idempotency_key_reused"


class InvalidRequest(ShotlineError):
    """Raised when a request is malformed in a way the schema cannot say (bad header, ...)."""

    code = "validation_error"


class WaitTimeout(ShotlineError):
    """Raised when a synchronous capture is not finished within its wait; ``job_id`` says which."""

    code = "timeout"

    def __init__(self, message: str = "", *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


# --- Webhooks ---------------------------------------------------------------------------


class WebhookSecretMissing(ShotlineError):
    """Raised when a webhook is asked for but no signing secret is configured for its owner."""

    code = "webhook_secret_missing"


class NoWebhook(ShotlineError):
    """Raised when a job's or batch's deliveries are to be resent but it has no ``webhook_url``."""

    code = "no_webhook"


class WebhookVerificationError(ShotlineError):
    """Raised when a received webhook's signature, id or timestamp does not verify."""

    code = "invalid_webhook_signature"


class MonitorNotFound(JobNotFound):
    """Raised when a monitor id names no monitor of the caller's (unknown or deleted)."""


class MonitorRefused(InvalidRequest):
    """Raised when a monitor breaks a server limit (count, shortest interval); ``field``
    names the field at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field

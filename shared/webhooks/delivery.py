"""One delivery attempt, start to end, and the start of a job's or batch's delivery.

:func:`open_delivery` is called when a job finishes (by the worker's job listener, or by any
code that finishes jobs), :func:`open_batch_delivery` when a batch's last job does: each
records the delivery and makes it due. :func:`attempt_delivery`
is what the delivery task runs: it takes the delivery's lock, sends the event signed with
the owner's secrets through an SSRF-safe client, logs the attempt and decides what comes
next (delivered, retry at a time, disabled, failed). Plain async code: every dependency is
passed in, so tests run it directly against real Redis and real HTTP servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import structlog

from shared.backoff import parse_retry_after
from shared.batch_view import job_status_url, render_batch
from shared.batches import Batch, BatchStore
from shared.correlation import http_headers
from shared.errors import BatchNotFound, JobNotFound, UrlBlocked
from shared.job_view import render_job
from shared.jobs import Job
from shared.metrics import record_webhook_attempt
from shared.monitors.events import monitor_run_of, render_monitor_event
from shared.status_store import StatusStore
from shared.storage.base import Storage
from shared.webhooks.models import AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState
from shared.webhooks.payload import EventType, event_body, event_for, webhook_id
from shared.webhooks.retry import Verdict, next_delay, utc_from_timestamp, verdict_for
from shared.webhooks.secrets import WebhookSecrets
from shared.webhooks.signing import signature_headers
from shared.webhooks.store import DeliveryStore
from shared.webhooks.subjects import batch_id_of, batch_subject

log = structlog.get_logger("shotline.webhooks")

USER_AGENT = "Shotline-Webhooks/0.1"
#: A task arriving up to this many seconds before its delivery is due still attempts it.
DUE_SLACK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DeliveryDeps:
    """Everything an attempt needs, built once per process."""

    deliveries: DeliveryStore
    jobs: StatusStore
    batches: BatchStore
    storage: Storage
    secrets: WebhookSecrets
    #: An SSRF-safe client (:func:`shared.safe_http.safe_async_client`).
    client: httpx.AsyncClient
    schedule: tuple[int, ...]
    url_ttl_seconds: int
    timeout_seconds: float
    #: Where the API answers: the base of the job status URLs in a batch's event.
    public_base_url: str


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None
    retry_after: str | None
    error: str | None
    duration_ms: int
    #: Trying again cannot help (the job or batch is gone): the delivery fails now.
    final: bool = False


@dataclass(frozen=True, slots=True)
class _Event:
    body: bytes
    request_id: str | None


async def open_delivery(deliveries: DeliveryStore, job: Job, *, due: float,
                        now: float | None = None) -> bool:
    """Record the delivery of finished ``job``'s event, due at ``due``; idempotent.

    Returns ``False`` (and changes nothing) when the job has no ``webhook_url`` or its
    delivery exists already.
    """
    if job.webhook_url is None:
        return False
    return await _open(deliveries, job.id, event_for(job.status), record_id=job.id,
                       url=job.webhook_url, owner=job.api_key_id, due=due, now=now)


async def open_batch_delivery(deliveries: DeliveryStore, batch: Batch, *, due: float,
                              now: float | None = None) -> bool:
    """Record the delivery of finished ``batch``'s ``batch.completed``, due at ``due``;
    idempotent like :func:`open_delivery`."""
    if batch.webhook_url is None:
        return False
    return await _open(deliveries, batch_subject(batch.id), EventType.batch_completed,
                       record_id=batch.id, url=batch.webhook_url, owner=batch.api_key_id,
                       due=due, now=now)


async def open_event_delivery(deliveries: DeliveryStore, subject: str, event: EventType, *,
                              record_id: str, url: str, owner: str | None, due: float,
                              now: float | None = None) -> bool:
    """Record the delivery of ``event`` about ``subject`` (any kind: a monitor's run...),
    due at ``due``; idempotent like :func:`open_delivery`."""
    return await _open(deliveries, subject, event, record_id=record_id, url=url, owner=owner,
                       due=due, now=now)


async def _open(deliveries: DeliveryStore, subject: str, event: EventType, *, record_id: str,
                url: str, owner: str | None, due: float, now: float | None) -> bool:
    delivery = Delivery(
        subject=subject, event=event, webhook_id=webhook_id(record_id, event), url=url,
        owner=owner, state=DeliveryState.scheduled, round=0, failures=0, attempts=0,
        next_attempt_at=time.time() if now is None else now,
    )
    created = await deliveries.open(delivery, due=due)
    if created:
        log.info("webhook delivery scheduled", subject=subject, webhook_id=delivery.webhook_id,
                 webhook_event=event.value, url=url)
    return created


async def attempt_delivery(subject: str, deps: DeliveryDeps, *, now: float | None = None
                           ) -> DeliveryAttempt | None:
    """Make the attempt of ``subject``'s delivery that is due, if one is.

    Returns the logged attempt, or ``None`` when there was nothing to do: no delivery, a
    final one, one not yet due (a duplicate task), or another attempt in progress.
    """
    lock = await deps.deliveries.lock(subject, ttl_seconds=deps.timeout_seconds + 30)
    if lock is None:
        log.info("webhook attempt already in progress elsewhere", subject=subject)
        return None
    try:
        started = time.time() if now is None else now
        delivery = await deps.deliveries.get(subject)
        if delivery is None or delivery.state.is_final:
            await deps.deliveries.forget_due(subject)
            return None
        if delivery.next_attempt_at is not None and \
                delivery.next_attempt_at > started + DUE_SLACK_SECONDS:
            return None  # a duplicate task; the due set brings it back on time
        return await _attempt(delivery, deps, started)
    finally:
        await deps.deliveries.unlock(subject, lock)


async def _attempt(delivery: Delivery, deps: DeliveryDeps, started: float) -> DeliveryAttempt:
    number = delivery.attempts + 1
    bound = log.bind(subject=delivery.subject, webhook_id=delivery.webhook_id, url=delivery.url,
                     attempt=number, round=delivery.round)
    if await deps.deliveries.endpoint_disabled(delivery.owner, delivery.url):
        answer = _Answer(None, None, "endpoint disabled: it answered 410 Gone earlier", 0)
        verdict = Verdict.disabled
    else:
        answer = await _send(delivery, deps, started)
        verdict = verdict_for(answer.status)

    failures = delivery.failures
    next_at: float | None = None
    if verdict is Verdict.delivered:
        state, outcome, failures = DeliveryState.delivered, AttemptOutcome.delivered, 0
    elif verdict is Verdict.disabled:
        state, outcome = DeliveryState.disabled, AttemptOutcome.disabled
        if answer.status == 410:
            await deps.deliveries.disable_endpoint(delivery.owner, delivery.url,
                                                   subject=delivery.subject, at=started)
    else:
        failures += 1
        delay = None if answer.final else next_delay(
            failures, deps.schedule, status=answer.status,
            retry_after=parse_retry_after(answer.retry_after, now=started))
        if delay is None:
            state, outcome = DeliveryState.failed, AttemptOutcome.failed
        else:
            state, outcome = DeliveryState.scheduled, AttemptOutcome.retrying
            next_at = started + answer.duration_ms / 1000 + delay

    attempt = DeliveryAttempt(
        number=number, round=delivery.round, at=utc_from_timestamp(started),
        webhook_id=delivery.webhook_id, url=delivery.url, status=answer.status,
        error=answer.error, duration_ms=answer.duration_ms, outcome=outcome,
        next_attempt_at=None if next_at is None else utc_from_timestamp(next_at),
    )
    applied = await deps.deliveries.record(delivery, attempt, state=state, failures=failures,
                                           next_attempt_at=next_at)
    record_webhook_attempt(
        "delivered" if outcome is AttemptOutcome.delivered
        else "failed" if outcome is AttemptOutcome.retrying else "gave_up"
    )
    bound.info("webhook attempt finished", outcome=outcome.value, status=answer.status,
               error=answer.error, duration_ms=answer.duration_ms,
               next_attempt_at=attempt.next_attempt_at.isoformat() if attempt.next_attempt_at else None,
               superseded=not applied)
    return attempt


async def _send(delivery: Delivery, deps: DeliveryDeps, started: float) -> _Answer:
    """Build, sign and POST the event; the answer, or why there was none."""
    clock = time.perf_counter()

    def answer(status: int | None, error: str | None, retry_after: str | None = None,
               *, final: bool = False) -> _Answer:
        return _Answer(status, retry_after, error, round((time.perf_counter() - clock) * 1000),
                       final)

    event = await _render_event(delivery, deps)
    if event is None:
        return answer(None, "the record has expired; nothing to send", final=True)
    keys = await deps.secrets.signing_keys(delivery.owner, now=started)
    if not keys:
        return answer(None, "no webhook secret is configured for the owner")
    body = event.body
    headers = {
        **http_headers(request_id=event.request_id),
        **signature_headers(delivery.webhook_id, int(started), body, keys),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    try:
        async with asyncio.timeout(deps.timeout_seconds):
            async with deps.client.stream("POST", delivery.url, content=body,
                                          headers=headers) as response:
                # The body is never read: only the status (and Retry-After) matter.
                status = response.status_code
                error = None
                if 300 <= status < 400:
                    location = response.headers.get("location", "")[:200]
                    error = f"redirect not followed (Location: {location})"
                return answer(status, error, response.headers.get("retry-after"))
    except UrlBlocked as exc:
        return answer(None, f"url_blocked: {exc.message}")
    except (TimeoutError, httpx.TimeoutException):
        return answer(None, f"timeout: no answer within {deps.timeout_seconds:g} s")
    except httpx.HTTPError as exc:
        return answer(None, f"connection_error: {type(exc).__name__}: {exc}".rstrip(": "))


async def _render_event(delivery: Delivery, deps: DeliveryDeps) -> _Event | None:
    """The event's body, rendered now from the job's or batch's record (``None``: expired)."""
    if monitor_run_of(delivery.subject) is not None:
        rendered = await render_monitor_event(deps.deliveries.redis, deps.storage,
                                              delivery.subject,
                                              url_ttl_seconds=deps.url_ttl_seconds)
        if rendered is None:
            return None
        return _Event(event_body(delivery.event, rendered[0], occurred_at=rendered[1]), None)
    batch_id = batch_id_of(delivery.subject)
    if batch_id is not None:
        try:
            batch = await deps.batches.get(batch_id)
        except BatchNotFound:
            return None
        view = await render_batch(deps.batches, batch,
                                  status_url=job_status_url(deps.public_base_url))
        return _Event(event_body(delivery.event, view,
                                 occurred_at=batch.finished_at or batch.created_at), None)
    try:
        job = await deps.jobs.get(delivery.subject)
    except JobNotFound:
        return None
    job_view = render_job(job, deps.storage, url_ttl_seconds=deps.url_ttl_seconds)
    return _Event(event_body(delivery.event, job_view,
                             occurred_at=job.finished_at or job.created_at), job.request_id)


async def dispatch_due(
    deliveries: DeliveryStore,
    enqueue: Callable[[str], Awaitable[None]],
    *,
    now: float | None = None,
    lease_seconds: float,
    limit: int = 100,
) -> list[str]:
    """Hand every due delivery to ``enqueue`` (which sends its task); returns the subjects.

    Each is leased first, so one whose task never runs comes due again after
    ``lease_seconds``. Several dispatchers may run at once: a claim is atomic.
    """
    ids = await deliveries.claim_due(now=time.time() if now is None else now,
                                     lease_seconds=lease_seconds, limit=limit)
    for subject in ids:
        await enqueue(subject)
    if ids:
        log.info("due webhook deliveries enqueued", count=len(ids))
    return ids

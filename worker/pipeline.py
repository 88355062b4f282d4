"""The capture pipeline: plain async code that takes one job from queued to its end.

Celery tasks call :func:`run_capture_job`; tests call it directly. Every dependency is
passed in, so the pipeline knows nothing of Celery or of where settings come from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import time
from dataclasses import dataclass
from typing import Protocol

import structlog
from PIL import Image

from shared.apikeys import KeyStore
from shared.backoff import backoff_delay
from shared.completion import Completion
from shared.constants import RESULTS_PREFIX
from shared.errors import (
    CaptureError,
    CaptureHostUnresolvable,
    CaptureUrlBlocked,
    HostUnresolvable,
    JobLost,
    JobNotFound,
    NoFreeSlot,
    ResultNotStored,
    ResultTooLarge,
    StorageError,
    StoreUnavailable,
    UrlBlocked,
)
from shared.jobs import ImageFormat, Job, JobError, JobStatus, StoredResult, utcnow
from shared.quality import valid_text
from shared.queue import MAX_CAPTURE_SECONDS, SLOT_RETRY_COUNTDOWN_SECONDS
from shared.semaphore import FleetSemaphore, Lease, wait_for_slot
from shared.status_store import Ended, StatusStore
from shared.storage.base import Storage
from shared.storage.destinations import placement_for
from shared.url_policy import UrlPolicy
from worker.content import page_content, store_content
from worker.engines.base import Capture, CaptureEngine
from worker.engines.blank import is_blank
from worker.outage import through_outage
from worker.poster import store_poster
from worker.thumbnail import thumbnail

log = structlog.get_logger("shotline.pipeline")

#: Upper bound of the exponential backoff between capture attempts, in seconds.
MAX_BACKOFF_SECONDS = 60.0
#: Ceiling of the first retry's delay; it doubles per attempt (full jitter, shared.backoff).
RETRY_BASE_SECONDS = 2.0

#: Seconds a fleet slot's lease outlasts the capture's own timeout (the SnapAPI engine waits
#: up to 5 s past it for an answer).
SLOT_LEASE_MARGIN_SECONDS = 10.0
#: A fleet slot's lease: the longest capture plus the margin. A slot is given back by the
#: transition that records the attempt's outcome (after the result is stored: the same round
#: trip); the lease only gives a crashed holder's slot back.
SLOT_LEASE_SECONDS = MAX_CAPTURE_SECONDS + SLOT_LEASE_MARGIN_SECONDS


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: a final status, or a delay after which to try again."""

    status: JobStatus | None
    retry_in: float | None = None
    #: True when the job did not run because no fleet slot was free: it stays queued and its
    #: task comes back after ``retry_in`` without an attempt counted.
    waiting: bool = False


class JobListener(Protocol):
    """Told about every job that reaches a final status (webhooks, cache, metrics...)."""

    async def job_finished(self, job: Job) -> None:
        """React to ``job`` having just become succeeded or failed (called once per outcome)."""
        ...


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    """Everything the pipeline needs, built once per worker process."""

    store: StatusStore
    engine: CaptureEngine
    storage: Storage
    policy: UrlPolicy
    max_attempts: int
    max_result_bytes: int
    listeners: tuple[JobListener, ...] = ()
    #: Settles finished jobs (result cache, single-flight followers, batches, hooks): its
    #: part of a job's ending runs in the job's final transition, then it is told first.
    #: Not also one of ``listeners``.
    completion: Completion | None = None
    #: Fleet-wide slots every capture must hold (the SnapAPI plan's concurrency), if any.
    slots: FleetSemaphore | None = None
    #: How long to wait for a slot before going back to the queue.
    slot_wait: float = 2.0
    #: Seconds past the longest capture after which the sweeper presumes a worker dead.
    running_grace: float = 60.0
    #: Longest countdown a retry may use (see :func:`shared.queue.max_countdown`); longer
    #: delays park the job for the sweeper.
    max_countdown: float = MAX_BACKOFF_SECONDS
    #: Idempotent listeners told again when a redelivered task finds its job already
    #: finished: the worker that finished it may have died before they heard of it.
    renotify: tuple[JobListener, ...] = ()


def result_key(job: Job) -> str:
    """Storage key of a job's result; the same on every attempt, so redelivery overwrites."""
    return f"{RESULTS_PREFIX}{job.id}.{job.options.format.extension}"


def attempt_limit(job: Job, max_attempts: int) -> int:
    """Most attempts ``job`` may get: ``max_attempts`` (``CAPTURE_MAX_ATTEMPTS``) for
    Shotline's own faults, or more when the request's ``retries`` asks for them."""
    return max(max_attempts, job.options.retries + 1)


def may_retry(exc: CaptureError, job: Job, max_attempts: int) -> bool:
    """Whether a failed attempt of ``job`` is tried again.

    Shotline's own faults (browser crash, engine 429/5xx, storage hiccup) are, up to
    ``CAPTURE_MAX_ATTEMPTS``. A page that did not answer in time is tried again only as
    often as the request's ``retries`` asks: retrying it on our own initiative would turn
    ``timeout_ms`` into a fraction of the real bound and hold worker slots meanwhile.
    """
    if not exc.retryable:
        return False
    if exc.page_fault:
        return job.attempts <= job.options.retries
    return job.attempts < attempt_limit(job, max_attempts)


def describe(capture: Capture, key: str, fmt: ImageFormat) -> StoredResult:
    """The result record of ``capture``: size, digest, pixel dimensions (images only) and
    what the engine learned about the page."""
    width, height = capture.width, capture.height
    if width is None and fmt is not ImageFormat.pdf and fmt.content_kind is None:
        with Image.open(io.BytesIO(capture.data)) as image:  # reads the header only
            width, height = image.size
    return StoredResult(
        key=key,
        content_type=capture.content_type,
        bytes=len(capture.data),
        width=width,
        height=height,
        sha256=hashlib.sha256(capture.data).hexdigest(),
        final_url=valid_text(capture.final_url),
        http_status=capture.http_status,
        title=valid_text(capture.title),
        blocked_requests=capture.blocked_requests,
        metadata=capture.metadata,
        duration_ms=capture.duration_ms,
        blank=capture.blank if capture.blank is not None else is_blank(capture.data, fmt),
        truncated=capture.truncated,
        popups_blocked=capture.popups_blocked,
        notes=[valid_text(note) or "" for note in capture.notes],
    )


async def run_capture_job(job_id: str, deps: PipelineDeps) -> Outcome:
    """Run one attempt of ``job_id``: capture, store, record the outcome.

    Never raises for capture problems: a retryable failure with attempts left returns a
    retry delay (the job goes back to ``queued``); anything else ends the job ``failed``
    with a specific ``error.code``. A job that already finished is left alone. With fleet
    slots configured, a job first waits (briefly) for a slot; without one it stays
    ``queued`` and the outcome says to come back later, no attempt counted.
    """
    lease: Lease | None = None
    if deps.slots is not None:
        # Sized for the longest capture rather than this job's own timeout, which would take
        # reading the job first: a round trip per job, to give a crashed holder's slot back
        # a little sooner. The slot is taken by the transition that starts the attempt.
        lease = deps.slots.lease(lease_seconds=SLOT_LEASE_SECONDS)
    try:
        job = await _start(job_id, deps, lease)
    except NoFreeSlot:
        log.debug("no free engine slot; the job waits in the queue", job_id=job_id)
        return Outcome(status=None, retry_in=SLOT_RETRY_COUNTDOWN_SECONDS, waiting=True)
    try:
        if job is None:
            await _renotify(deps, job_id)
            return Outcome(status=None)
        with structlog.contextvars.bound_contextvars(
            **job_log_context(job), url=job.options.url, engine=deps.engine.name,
            attempt=job.attempts,
        ):
            return await _capture_and_store(job, deps, lease)
    finally:
        if lease is not None:
            await lease.release()  # nothing to do once a transition gave it back


async def _start(job_id: str, deps: PipelineDeps, lease: Lease | None) -> Job | None:
    """Mark ``job_id`` running, taking ``lease``'s slot in the same script (waiting up to
    ``slot_wait`` for one: :class:`NoFreeSlot` after that)."""
    deadline_in = MAX_CAPTURE_SECONDS + deps.running_grace
    if lease is None:
        return await deps.store.mark_running(job_id, deadline_in=deadline_in)
    return await wait_for_slot(
        lambda: deps.store.mark_running(job_id, deadline_in=deadline_in, slot=lease),
        wait_seconds=deps.slot_wait,
    )


def job_log_context(job: Job) -> dict[str, str]:
    """What every log line about ``job`` carries: its id, request id and owner (when set).

    Bound to structlog's context for an attempt, so the engine's, storage's and listeners'
    lines carry it too.
    """
    context = {"job_id": job.id}
    if job.request_id is not None:
        context["request_id"] = job.request_id
    if job.api_key_id is not None:
        context["api_key_id"] = job.api_key_id
    return context


async def _capture_and_store(job: Job, deps: PipelineDeps, lease: Lease | None) -> Outcome:
    """One attempt of ``job`` (already marked running): capture, store, record the outcome."""
    started = time.perf_counter()
    if job.attempts > attempt_limit(job, deps.max_attempts):
        # Only redeliveries get here (retries stop at the limit): the worker of every
        # earlier attempt died, so this page may well be what kills them.
        return await _fail(deps, job, JobLost(
            f"the worker running this job died {job.attempts - 1} times; giving up"
        ), started, lease)
    log.info("job running", status=JobStatus.running.value)
    try:
        if job.options.url is not None:  # a document's connections meet the egress gate only
            await deps.policy.acheck_url(job.options.url)
        capture = await deps.engine.capture(job.options, request_id=job.request_id)
        if job.options.thumbnail_width is not None and not job.options.format.is_video:
            capture = dataclasses.replace(capture, data=thumbnail(
                capture.data, job.options.format, job.options.thumbnail_width,
                quality=job.options.quality,
            ))
        capture, contents = await page_content(capture, job.options)
        for data in (capture.data, *contents.values()):
            if len(data) > deps.max_result_bytes:
                raise ResultTooLarge(
                    f"result is {len(data)} bytes, above the limit of {deps.max_result_bytes}"
                )
        # The key's own bucket (its endpoint checked by the URL policy), or the default.
        placement = await through_outage(lambda: placement_for(
            deps.storage, job.api_key_id, keys=KeyStore(deps.store.redis), policy=deps.policy,
        ), what="placement")
        key = placement.prefix + result_key(job)
        # Blank detection decodes the whole picture (~5 ms of CPU for 1280x800): in a thread,
        # where Pillow lets go of the GIL, not on the loop every other capture runs on.
        result = await asyncio.to_thread(describe, capture, key, job.options.format)
        result.destination = placement.record
        if result.blank:
            log.warning("The picture is blank (essentially one colour).", notes=result.notes)
        storing = time.perf_counter()
        await placement.put(key, capture.data, content_type=capture.content_type)
        result.content = await store_content(placement, job.id, contents, job.options)
        if capture.poster is not None and job.options.thumbnail_width is not None:
            result.poster = await store_poster(placement, job, capture.poster,
                                               job.options.thumbnail_width)
        log.info("result stored", storage=placement.storage.name, key=key, bytes=result.bytes,
                 duration_ms=round((time.perf_counter() - storing) * 1000))
    except HostUnresolvable as exc:
        return await _fail(deps, job, CaptureHostUnresolvable(exc.message), started, lease)
    except UrlBlocked as exc:
        return await _fail(deps, job, CaptureUrlBlocked(exc.message), started, lease)
    except CaptureError as exc:
        return await _fail(deps, job, exc, started, lease)
    except StorageError as exc:
        return await _fail(deps, job, ResultNotStored(f"could not store the result: {exc.message}"),
                           started, lease)
    except StoreUnavailable:
        raise  # Redis is away: the task goes back to the queue, the job is not failed
    except Exception as exc:  # a bug must still end the job, never leave it running
        log.exception("capture crashed unexpectedly")
        return await _fail(deps, job, CaptureError(f"unexpected error: {type(exc).__name__}"),
                           started, lease)
    duration_ms = round((time.perf_counter() - started) * 1000)
    # The picture is stored: a Redis blip now must not cost the capture (worker.outage).
    ended = await through_outage(lambda: _finish(deps, job, result, lease), what="succeeded")
    if ended.job is None:
        log.info("job finished elsewhere meanwhile; result kept", duration_ms=duration_ms)
        await _renotify_finished(deps, job.id)
        return Outcome(status=None)
    log.info("job succeeded", duration_ms=duration_ms, bytes=result.bytes,
             blocked_requests=capture.blocked_requests, blank=result.blank,
             status=JobStatus.succeeded.value)
    await _settle(deps, ended.job, ended.followers)
    return Outcome(status=JobStatus.succeeded)


async def _finish(deps: PipelineDeps, job: Job, outcome: StoredResult | JobError,
                  lease: Lease | None) -> Ended:
    """The final transition of ``job`` (running): gives its slot back and does the
    completion's part of its ending, in one script."""
    now = utcnow()
    ending = None
    if deps.completion is not None:
        ending = deps.completion.ending(
            job, result=outcome if isinstance(outcome, StoredResult) else None, finished_at=now)
    return await deps.store.finish(job.id, outcome, now=now, slot=lease, ending=ending)


async def _settle(deps: PipelineDeps, job: Job, followers: list[str]) -> None:
    """``job`` just finished: the completion settles it and its ``followers``, then every
    listener is told."""
    if deps.completion is not None:
        try:
            await deps.completion.ended(job, followers)
        except Exception:
            log.exception("settling the finished job failed", job_id=job.id)
    await _notify(deps, job)


async def _renotify(deps: PipelineDeps, job_id: str) -> None:
    """``job_id`` was found finished (a redelivered task; or this attempt's own final write,
    retried through a Redis outage, had applied before its answer was lost): tell the
    idempotent ``renotify`` listeners again, in case whoever finished it could not."""
    try:
        job = await deps.store.get(job_id)
    except JobNotFound:
        log.info("job gone; nothing to do", job_id=job_id)
        return
    log.info("job already finished; telling idempotent listeners again", job_id=job_id,
             status=job.status.value)
    if job.status.is_terminal:
        await _notify(deps, job, deps.renotify)


async def _renotify_finished(deps: PipelineDeps, job_id: str) -> None:
    """:func:`_renotify` after this attempt's final write found the job finished: the job has
    its outcome either way, so Redis going away again only costs the (idempotent) repeat."""
    try:
        await _renotify(deps, job_id)
    except StoreUnavailable as exc:
        log.warning("could not tell the listeners again; Redis is unreachable", job_id=job_id,
                    error=exc.message)


async def _notify(deps: PipelineDeps, job: Job,
                  listeners: tuple[JobListener, ...] | None = None) -> None:
    """Tell every listener that ``job`` finished; one failing listener does not stop the rest."""
    for listener in deps.listeners if listeners is None else listeners:
        try:
            await listener.job_finished(job)
        except Exception:
            log.exception("job listener failed", job_id=job.id, listener=type(listener).__name__)


async def _fail(deps: PipelineDeps, job: Job, exc: CaptureError, started: float,
                lease: Lease | None) -> Outcome:
    duration_ms = round((time.perf_counter() - started) * 1000)
    error = JobError(code=exc.code, message=valid_text(exc.message) or "", status=exc.status)
    bound = log.bind(error_code=exc.code, duration_ms=duration_ms)
    if may_retry(exc, job, deps.max_attempts):
        delay = min(MAX_BACKOFF_SECONDS, exc.retry_after or backoff_delay(
            job.attempts, base=RETRY_BASE_SECONDS, cap=MAX_BACKOFF_SECONDS))
        park = delay > deps.max_countdown
        await through_outage(lambda: deps.store.mark_retrying(
            job.id, error, retry_in=delay, park=park, slot=lease), what="retrying")
        bound.info("job attempt failed; retrying", retry_in=round(delay, 2), error=exc.message,
                   status=JobStatus.queued.value, parked=park)
        return Outcome(status=None, retry_in=None if park else delay)
    ended = await through_outage(lambda: _finish(deps, job, error, lease), what="failed")
    if ended.job is None:
        bound.info("job finished elsewhere meanwhile")
        await _renotify_finished(deps, job.id)
        return Outcome(status=None)
    bound.info("job failed", error=exc.message, status=JobStatus.failed.value)
    await _settle(deps, ended.job, ended.followers)
    return Outcome(status=JobStatus.failed)

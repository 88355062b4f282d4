"""Delivery attempts run directly (no Celery) against real Redis and real HTTP receivers:
retries with one webhook-id, 410, timeouts, redirects, Retry-After, DNS changing under a
webhook, duplicate tasks, the dispatcher's leases and the capture pipeline's listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any, TypeVar

import pytest
from standardwebhooks import Webhook

from shared.batch_view import job_status_url, render_batch
from shared.batches import Batch, BatchStore, new_batch_id
from shared.completion import Completion, Resettle
from shared.connections import create_redis
from shared.job_view import render_job
from shared.jobs import CaptureOptions, Job, JobError, JobStatus, StoredResult, new_job_id, utcnow
from shared.result_cache import ResultCache
from shared.safe_http import safe_async_client
from shared.status_store import StatusStore
from shared.storage.local import LocalStorage
from shared.url_policy import UrlPolicy
from shared.webhooks.delivery import (
    DeliveryDeps,
    attempt_delivery,
    dispatch_due,
    open_batch_delivery,
    open_delivery,
)
from shared.webhooks.listener import WebhookListener
from shared.webhooks.models import AttemptOutcome, DeliveryState
from shared.webhooks.secrets import SecretSet, WebhookSecrets
from shared.webhooks.store import DeliveryStore
from shared.webhooks.subjects import batch_subject
from shotline.webhooks import generate_secret
from tests.test_safe_http import ScriptedDns
from tests.webhook_receiver import Reply, WebhookReceiver

T = TypeVar("T")
SECRET = generate_secret()
LOOPBACK_POLICY = UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))


def finished_job(url: str | None, *, status: JobStatus = JobStatus.succeeded,
                 owner: str | None = None) -> Job:
    now = utcnow()
    return Job(
        id=new_job_id(), status=status, created_at=now, started_at=now, finished_at=now,
        attempts=1, options=CaptureOptions(url="https://example.com"), webhook_url=url,
        api_key_id=owner,
        result=StoredResult(key="results/x.png", content_type="image/png", bytes=3, width=1,
                            height=1, sha256="ab") if status is JobStatus.succeeded else None,
        error=JobError(code="timeout", message="too slow") if status is JobStatus.failed else None,
    )


@pytest.fixture
def run(redis_url: str, tmp_path: Path) -> Callable[..., Any]:
    """Runs ``scenario(deps)`` in a fresh event loop with delivery deps on the test Redis."""

    def runner(scenario: Callable[[DeliveryDeps], Coroutine[Any, Any, T]], **overrides: Any) -> T:
        async def main() -> T:
            async with _deps(redis_url, tmp_path, **overrides) as deps:
                return await scenario(deps)

        return asyncio.run(main())

    return runner


@contextlib.asynccontextmanager
async def _deps(redis_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[DeliveryDeps]:
    redis = create_redis(redis_url)
    client = overrides.pop("client", None) or safe_async_client(LOOPBACK_POLICY, timeout=5)
    deps = DeliveryDeps(
        deliveries=DeliveryStore(redis, ttl_seconds=3600),
        jobs=StatusStore(redis, ttl_seconds=3600),
        batches=BatchStore(redis, ttl_seconds=3600),
        storage=LocalStorage(tmp_path / "files", "http://files.test", b"k" * 32),
        secrets=WebhookSecrets(redis, SecretSet(SECRET)),
        client=client, schedule=(1, 1), url_ttl_seconds=60, timeout_seconds=5,
        public_base_url="http://api.test",
    )
    deps = replace(deps, **overrides)
    try:
        yield deps
    finally:
        await client.aclose()
        await redis.aclose()


async def _start(deps: DeliveryDeps, job: Job) -> None:
    await deps.jobs.create(job)
    assert await open_delivery(deps.deliveries, job, due=time.time())


async def _attempt_until_final(deps: DeliveryDeps, job_id: str, *, limit: int = 10) -> int:
    """Run every attempt, jumping the clock to each due time; returns how many ran."""
    for count in range(limit):
        delivery = await deps.deliveries.get(job_id)
        assert delivery is not None
        if delivery.state.is_final:
            return count
        assert delivery.next_attempt_at is not None
        assert await attempt_delivery(job_id, deps, now=max(time.time(), delivery.next_attempt_at))
    raise AssertionError("the delivery never ended")


def test_503_503_200_is_three_attempts_with_one_webhook_id(run: Callable[..., Any]) -> None:
    with WebhookReceiver([Reply(503), Reply(503), Reply(200)]) as receiver:
        job = finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            count = await _attempt_until_final(deps, job.id)
            return (count, await deps.deliveries.get(job.id), await deps.deliveries.attempts(job.id),
                    await deps.deliveries.due_at(job.id))

        count, delivery, attempts, due = run(scenario)
    assert count == 3 and len(receiver.received) == 3
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert ids == {f"msg_{job.id}_job_succeeded"}
    for request in receiver.received:
        event = Webhook(SECRET).verify(request.body, request.headers)
        assert event["type"] == "job.succeeded" and event["data"]["id"] == job.id
    assert delivery.state is DeliveryState.delivered and due is None
    assert [(a.number, a.status, a.outcome) for a in attempts] == [
        (1, 503, AttemptOutcome.retrying), (2, 503, AttemptOutcome.retrying),
        (3, 200, AttemptOutcome.delivered)]
    assert attempts[0].next_attempt_at is not None and attempts[2].next_attempt_at is None
    gap = (attempts[1].at - attempts[0].at).total_seconds()
    assert 0.8 <= gap <= 1.3, gap  # schedule (1, 1) with jitter


def test_the_body_is_the_job_record_with_a_fresh_download_url(run: Callable[..., Any]) -> None:
    with WebhookReceiver() as receiver:
        job = finished_job(receiver.url())
        failed = finished_job(receiver.url("/failed"), status=JobStatus.failed)

        async def scenario(deps: DeliveryDeps) -> Any:
            for one in (job, failed):
                await _start(deps, one)
                await _attempt_until_final(deps, one.id)
            return render_job(job, deps.storage, url_ttl_seconds=60)

        expected = run(scenario).model_dump(mode="json")
    body = json.loads(receiver.received[0].body)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "job.succeeded"
    assert body["timestamp"] == expected["finished_at"]
    assert body["data"]["result"]["url"].startswith("http://files.test/v1/files/results/x.png?")
    for volatile in ("url", "expires_at"):
        del body["data"]["result"][volatile], expected["result"][volatile]
    assert body["data"] == expected
    assert receiver.received[0].headers["content-type"] == "application/json"
    failure = json.loads(receiver.received[1].body)
    assert failure["type"] == "job.failed"
    assert failure["data"]["error"] == {"code": "timeout", "message": "too slow", "status": None}
    assert receiver.received[1].headers["webhook-id"].endswith("_job_failed")


def test_410_disables_the_endpoint_for_later_jobs(run: Callable[..., Any]) -> None:
    with WebhookReceiver([Reply(410)]) as receiver:
        first, second = finished_job(receiver.url()), finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, first)
            assert await _attempt_until_final(deps, first.id) == 1
            await _start(deps, second)
            assert await _attempt_until_final(deps, second.id) == 1
            return (await deps.deliveries.get(first.id), await deps.deliveries.attempts(second.id),
                    await deps.deliveries.endpoint_disabled("key-2", receiver.url()))

        delivery, second_attempts, other_disabled = run(scenario)
    assert len(receiver.received) == 1  # the second job sent nothing
    assert delivery.state is DeliveryState.disabled
    assert second_attempts[0].outcome is AttemptOutcome.disabled
    assert second_attempts[0].status is None and "410" in (second_attempts[0].error or "")
    assert other_disabled is False  # another owner's endpoint at the same URL is not touched


def test_a_used_up_schedule_fails_the_delivery(run: Callable[..., Any]) -> None:
    with WebhookReceiver(default=Reply(500)) as receiver:
        job = finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            count = await _attempt_until_final(deps, job.id)
            again = await attempt_delivery(job.id, deps, now=time.time() + 3600)
            return (count, again, await deps.deliveries.get(job.id),
                    await deps.deliveries.due_at(job.id))

        count, again, delivery, due = run(scenario)
    assert count == 3 and len(receiver.received) == 3 and again is None
    assert delivery.state is DeliveryState.failed and delivery.next_attempt_at is None
    assert due is None


def test_no_answer_within_the_timeout_is_a_failed_attempt(run: Callable[..., Any]) -> None:
    with WebhookReceiver(default=Reply(hang=True)) as receiver:
        job = finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            return await attempt_delivery(job.id, deps)

        attempt = run(scenario, timeout_seconds=0.5)
    assert attempt.status is None and attempt.error.startswith("timeout")
    assert attempt.outcome is AttemptOutcome.retrying
    assert 450 <= attempt.duration_ms < 2000


def test_redirects_are_failures_and_not_followed(run: Callable[..., Any]) -> None:
    with WebhookReceiver([Reply(301, {"Location": "/moved"})]) as receiver:
        job = finished_job(receiver.url("/hook"))

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            return await attempt_delivery(job.id, deps)

        attempt = run(scenario)
    assert (attempt.status, attempt.outcome) == (301, AttemptOutcome.retrying)
    assert "redirect not followed" in attempt.error and "/moved" in attempt.error
    assert [r.path for r in receiver.received] == ["/hook"]


def test_retry_after_is_honoured(run: Callable[..., Any]) -> None:
    with WebhookReceiver([Reply(503, {"Retry-After": "30"})]) as receiver:
        job = finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            attempt = await attempt_delivery(job.id, deps)
            too_early = await attempt_delivery(job.id, deps, now=time.time() + 10)
            return attempt, too_early, await deps.deliveries.due_at(job.id)

        attempt, too_early, due = run(scenario)
    wait = (attempt.next_attempt_at - attempt.at).total_seconds()
    assert 30 <= wait < 32 and due == pytest.approx(attempt.next_attempt_at.timestamp())
    assert too_early is None and len(receiver.received) == 1


def test_dns_changing_to_a_blocked_address_is_refused_at_delivery(
    run: Callable[..., Any]
) -> None:
    with WebhookReceiver() as receiver:
        url = f"http://hooks.example.test:{receiver.port}/hook"
        policy = UrlPolicy(allowed_networks=(), allowed_ports=frozenset({443, receiver.port}))
        dns = ScriptedDns(["93.184.215.14"], ["127.0.0.1"])
        job = finished_job(asyncio.run(policy.acheck_url(url, resolver=dns)).url)  # "submit"

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            return await attempt_delivery(job.id, deps)

        attempt = run(scenario, client=safe_async_client(policy, resolver=dns))
    assert attempt.status is None and attempt.outcome is AttemptOutcome.retrying
    assert attempt.error.startswith("url_blocked") and "127.0.0.1" in attempt.error
    assert receiver.received == []


def test_duplicate_tasks_make_one_attempt(run: Callable[..., Any]) -> None:
    with WebhookReceiver([Reply(hang=True)]) as receiver:
        job = finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            first = asyncio.create_task(attempt_delivery(job.id, deps))
            await asyncio.to_thread(receiver.wait_for, 1)
            duplicate = await attempt_delivery(job.id, deps)  # while the first one is in flight
            receiver.release.set()
            done = await first
            after = await attempt_delivery(job.id, deps, now=time.time() + 3600)
            return duplicate, done, after

        duplicate, done, after = run(scenario)
    assert duplicate is None and after is None
    assert done.outcome is AttemptOutcome.delivered and len(receiver.received) == 1


def test_no_secret_means_nothing_is_sent(run: Callable[..., Any], redis_url: str) -> None:
    with WebhookReceiver() as receiver:
        job = finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            return await attempt_delivery(job.id, deps)

        attempt = run(scenario, secrets=WebhookSecrets(create_redis(redis_url), SecretSet(None)))
    assert attempt.outcome is AttemptOutcome.retrying and "no webhook secret" in attempt.error
    assert receiver.received == []


def test_the_dispatcher_leases_what_it_enqueues(run: Callable[..., Any]) -> None:
    now = time.time()
    due_now, due_later = finished_job("http://127.0.0.1:9/a"), finished_job("http://127.0.0.1:9/b")

    async def scenario(deps: DeliveryDeps) -> list[list[str]]:
        await open_delivery(deps.deliveries, due_now, due=now)
        await open_delivery(deps.deliveries, due_later, due=now + 100)
        sent: list[str] = []

        async def enqueue(job_id: str) -> None:
            sent.append(job_id)

        rounds = []
        for at in (now, now + 1, now + 61, now + 101):
            await dispatch_due(deps.deliveries, enqueue, now=at, lease_seconds=60)
            rounds.append(list(sent))
            sent.clear()
        return rounds

    assert run(scenario) == [[due_now.id], [], [due_now.id], [due_later.id]]


def test_a_redelivery_wins_over_an_attempt_in_flight(run: Callable[..., Any]) -> None:
    with WebhookReceiver([Reply(hang=True), Reply(200)]) as receiver:
        job = finished_job(receiver.url())

        async def scenario(deps: DeliveryDeps) -> Any:
            await _start(deps, job)
            first = asyncio.create_task(attempt_delivery(job.id, deps))
            await asyncio.to_thread(receiver.wait_for, 1)
            assert await deps.deliveries.restart(job.id, now=time.time(), due=time.time())
            receiver.release.set()
            await first  # delivered, but logged only: the redelivery's state stays
            between = await deps.deliveries.get(job.id)
            await _attempt_until_final(deps, job.id)
            return between, await deps.deliveries.attempts(job.id)

        between, attempts = run(scenario)
    assert between.state is DeliveryState.scheduled and between.round == 1
    assert [(a.round, a.outcome) for a in attempts] == [
        (0, AttemptOutcome.delivered), (1, AttemptOutcome.delivered)]
    assert len(receiver.received) == 2


def test_the_listener_opens_one_delivery_per_job(run: Callable[..., Any]) -> None:
    sent: list[str] = []
    job, silent = finished_job("http://127.0.0.1:9/hook"), finished_job(None)

    async def scenario(deps: DeliveryDeps) -> Any:
        listener = WebhookListener(deps.deliveries, enqueue=sent.append, lease_seconds=60)
        for one in (job, job, silent):  # the second call: a redelivered capture task
            await listener.job_finished(one)
        return (await deps.deliveries.get(job.id), await deps.deliveries.due_at(job.id),
                await deps.deliveries.get(silent.id))

    delivery, due, none = run(scenario)
    assert sent == [job.id]
    assert delivery.state is DeliveryState.scheduled and delivery.webhook_id.startswith("msg_")
    assert due == pytest.approx(time.time() + 60, abs=5)  # only a safety net: the task was sent
    assert none is None


def test_a_redelivered_capture_task_tells_the_listeners_again(
    run: Callable[..., Any], make_settings: Callable[..., Any]
) -> None:
    """The worker may die after marking the job finished but before its webhook was queued:
    the redelivered task finds the job finished and tells the idempotent listeners again."""
    from worker.engines import make_engine
    from worker.pipeline import PipelineDeps, run_capture_job

    class Recorder:
        def __init__(self) -> None:
            self.told: list[Job] = []

        async def job_finished(self, job: Job) -> None:
            self.told.append(job)

    once, again = Recorder(), Recorder()
    job = finished_job("http://127.0.0.1:9/hook")

    async def scenario(deps: DeliveryDeps) -> Any:
        await deps.jobs.create(job)
        pipeline = PipelineDeps(store=deps.jobs, engine=make_engine(make_settings()),
                                storage=deps.storage, policy=LOOPBACK_POLICY, max_attempts=1,
                                max_result_bytes=1000, listeners=(once,), renotify=(again,))
        return (await run_capture_job(job.id, pipeline),
                await run_capture_job(new_job_id(), pipeline))

    finished, unknown = run(scenario)
    assert finished.status is None and unknown.status is None
    assert [one.id for one in again.told] == [job.id] and again.told[0].status is JobStatus.succeeded
    assert once.told == []  # listeners that count outcomes hear of each one once


def test_a_final_write_whose_answer_was_lost_still_schedules_the_webhook(
    run: Callable[..., Any], make_settings: Callable[..., Any]
) -> None:
    """Redis applies the job's final transition and goes away before answering: the write,
    tried again once Redis is back (worker.outage), finds the job finished. The listeners
    are told all the same (the webhook is scheduled), once."""
    from shared.errors import StoreUnavailable
    from tests.fakes.snapapi_server import SnapApiStandIn
    from worker.engines import make_engine
    from worker.pipeline import PipelineDeps, run_capture_job

    class AnswerLostOnce(StatusStore):
        lost = 0

        async def finish(self, *args: Any, **kwargs: Any) -> Any:
            ended = await super().finish(*args, **kwargs)
            if not self.lost:
                self.lost += 1
                raise StoreUnavailable("Connection closed by server.")
            return ended

    job = Job(id=new_job_id(), status=JobStatus.queued, created_at=utcnow(),
              options=CaptureOptions(url="http://127.0.0.1:9/page", width=200, height=150),
              webhook_url="http://127.0.0.1:9/hook")
    sent: list[str] = []

    with SnapApiStandIn(api_key="sk_test_lost") as snap:
        settings = make_settings(engine="snapapi", snapapi_key="sk_test_lost",
                                 snapapi_base_url=snap.base_url)

        async def scenario(deps: DeliveryDeps) -> Any:
            store = AnswerLostOnce(deps.jobs.redis, ttl_seconds=3600)
            await store.create(job)
            completion = Completion(store, ResultCache(store.redis, store, index_ttl_seconds=60),
                                    deps.batches)
            listener = WebhookListener(deps.deliveries, enqueue=sent.append, lease_seconds=60)
            engine = make_engine(settings)
            pipeline = PipelineDeps(
                store=store, engine=engine, storage=deps.storage,
                policy=LOOPBACK_POLICY, max_attempts=1, max_result_bytes=10_000_000,
                listeners=(listener,), renotify=(listener,), completion=completion)
            try:
                outcome = await run_capture_job(job.id, pipeline)
            finally:
                await engine.aclose()
            return outcome, store.lost, await store.get(job.id), await deps.deliveries.get(job.id)

        outcome, lost, stored, delivery = run(scenario)
    assert lost == 1 and outcome.status is None  # the retried write found the job finished
    assert stored.status is JobStatus.succeeded and stored.result is not None
    assert delivery is not None and delivery.state is DeliveryState.scheduled
    assert sent == [job.id]


# --- batch.completed --------------------------------------------------------------------


async def _finished_batch(deps: DeliveryDeps, url: str | None) -> Batch:
    """A batch of two finished jobs, completed through the store as Completion does it."""
    jobs = [finished_job(None), finished_job(None, status=JobStatus.failed)]
    batch = Batch(id=new_batch_id(), created_at=utcnow(), webhook_url=url,
                  job_ids=[job.id for job in jobs], urls=[job.options.url for job in jobs])
    await deps.batches.create(batch)
    for job in jobs:
        await deps.jobs.create(job.model_copy(update={"batch_id": batch.id}))
        completed = await deps.batches.job_finished(batch.id, job.id)
    assert completed is not None
    return completed


def test_a_batch_event_is_retried_with_one_webhook_id_and_carries_the_batch_view(
    run: Callable[..., Any]
) -> None:
    with WebhookReceiver([Reply(503), Reply(200)]) as receiver:

        async def scenario(deps: DeliveryDeps) -> Any:
            batch = await _finished_batch(deps, receiver.url())
            assert await open_batch_delivery(deps.deliveries, batch, due=time.time())
            assert not await open_batch_delivery(deps.deliveries, batch, due=time.time())
            subject = batch_subject(batch.id)
            count = await _attempt_until_final(deps, subject)
            view = await render_batch(deps.batches, batch,
                                      status_url=job_status_url("http://api.test"))
            return batch, count, await deps.deliveries.attempts(subject), view

        batch, count, attempts, view = run(scenario)
    assert count == 2 and len(receiver.received) == 2
    assert [(a.status, a.outcome) for a in attempts] == [
        (503, AttemptOutcome.retrying), (200, AttemptOutcome.delivered)]
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert ids == {f"msg_{batch.id}_batch_completed"}
    event = Webhook(SECRET).verify(receiver.received[1].body, receiver.received[1].headers)
    assert event["type"] == "batch.completed"
    assert event["timestamp"] == view.finished_at.isoformat().replace("+00:00", "Z")
    assert event["data"] == view.model_dump(mode="json")
    assert event["data"]["done"] and event["data"]["counts"]["failed"] == 1
    assert event["data"]["jobs"][0]["status_url"] == f"http://api.test/v1/jobs/{batch.job_ids[0]}"


def test_a_batch_and_a_job_delivery_do_not_share_keys(run: Callable[..., Any]) -> None:
    """A batch's subject is ``batch:<id>``; a job's stays its bare id (its keys unchanged)."""
    async def scenario(deps: DeliveryDeps) -> Any:
        batch = await _finished_batch(deps, "http://127.0.0.1:9/batch")
        job = finished_job("http://127.0.0.1:9/job").model_copy(update={"id": batch.id})
        await deps.jobs.create(job)
        assert await open_delivery(deps.deliveries, job, due=time.time())
        assert await open_batch_delivery(deps.deliveries, batch, due=time.time())
        redis = deps.deliveries.redis
        return (await deps.deliveries.get(batch.id), await deps.deliveries.get(f"batch:{batch.id}"),
                await redis.exists(f"shotline:webhook:{batch.id}"),
                await redis.zrange("shotline:webhooks:due", 0, -1))

    job_delivery, batch_delivery, job_key_exists, due = run(scenario)
    assert job_delivery.event.value == "job.succeeded" and job_delivery.url.endswith("/job")
    assert batch_delivery.event.value == "batch.completed" and batch_delivery.url.endswith("/batch")
    assert job_key_exists == 1
    assert sorted(due) == sorted([job_delivery.subject.encode(), batch_delivery.subject.encode()])


def test_a_delivery_stored_before_subjects_still_reads(run: Callable[..., Any]) -> None:
    """A job delivery written by the previous version names its job in a ``job_id`` field."""
    job = finished_job("http://127.0.0.1:9/hook")

    async def scenario(deps: DeliveryDeps) -> Any:
        await deps.deliveries.redis.hset(f"shotline:webhook:{job.id}", mapping={
            "job_id": job.id, "event": "job.succeeded", "webhook_id": f"msg_{job.id}_job_succeeded",
            "url": job.webhook_url or "", "owner": "", "state": "scheduled", "round": "0",
            "failures": "0", "attempts": "0", "next_attempt_at": "1",
        })
        return await deps.deliveries.get(job.id)

    delivery = run(scenario)
    assert delivery.subject == job.id and delivery.state is DeliveryState.scheduled


def test_the_listener_opens_one_delivery_per_batch(run: Callable[..., Any]) -> None:
    sent: list[str] = []

    async def scenario(deps: DeliveryDeps) -> Any:
        batch = await _finished_batch(deps, "http://127.0.0.1:9/hook")
        silent = await _finished_batch(deps, None)
        listener = WebhookListener(deps.deliveries, enqueue=sent.append, lease_seconds=60)
        for one in (batch, batch, silent):
            await listener.batch_finished(one)
        return batch, await deps.deliveries.get(batch_subject(silent.id))

    batch, none = run(scenario)
    assert sent == [f"batch:{batch.id}"] and none is None


def test_a_redelivered_task_schedules_a_finished_batchs_webhook_left_unscheduled(
    run: Callable[..., Any]
) -> None:
    """The worker died after the batch's last job was counted, before its hook ran: the
    redelivered capture task (renotify) schedules ``batch.completed``, once."""
    sent: list[str] = []

    async def scenario(deps: DeliveryDeps) -> Any:
        batch = await _finished_batch(deps, "http://127.0.0.1:9/hook")
        running = Batch(id=new_batch_id(), created_at=utcnow(), webhook_url="http://127.0.0.1:9/b",
                        job_ids=["a", "b"], urls=["https://example.com"] * 2)
        await deps.batches.create(running)
        resettle = Resettle(_completion(deps, sent))
        last = await deps.jobs.get(batch.job_ids[-1])
        for _ in range(2):
            await resettle.job_finished(last)
        await resettle.job_finished(finished_job(None).model_copy(update={"batch_id": running.id}))
        return batch, await deps.deliveries.get(batch_subject(running.id))

    batch, none = run(scenario)
    assert sent == [f"batch:{batch.id}"]  # the unfinished batch is not told
    assert none is None


def test_a_redelivered_task_counts_its_job_in_the_batch_once(run: Callable[..., Any]) -> None:
    """The worker died after finishing the batch's last job, before counting it: the
    redelivered task counts it, the batch ends and ``batch.completed`` is scheduled once,
    however often the job is settled again."""
    sent: list[str] = []

    async def scenario(deps: DeliveryDeps) -> Any:
        jobs = [finished_job(None), finished_job(None)]
        batch = Batch(id=new_batch_id(), created_at=utcnow(), webhook_url="http://127.0.0.1:9/h",
                      job_ids=[job.id for job in jobs], urls=[job.options.url for job in jobs])
        await deps.batches.create(batch)
        jobs = [job.model_copy(update={"batch_id": batch.id}) for job in jobs]
        for job in jobs:
            await deps.jobs.create(job)
        completion = _completion(deps, sent)
        await completion.settled(jobs[0])
        for _ in range(3):  # the first job told again: still one of two counted
            await Resettle(completion).job_finished(jobs[0])
        unfinished = await deps.batches.get(batch.id)
        for _ in range(2):  # the last job, never counted before its worker died
            await Resettle(completion).job_finished(jobs[1])
        return unfinished, await deps.batches.get(batch.id)

    unfinished, finished = run(scenario)
    assert unfinished.finished_at is None
    assert finished.finished_at is not None
    assert sent == [f"batch:{finished.id}"]


def _completion(deps: DeliveryDeps, sent: list[str]) -> Completion:
    """A Completion whose webhook listener records what it would enqueue in ``sent``."""
    webhooks = WebhookListener(deps.deliveries, enqueue=sent.append, lease_seconds=60)
    cache = ResultCache(deps.jobs.redis, deps.jobs, index_ttl_seconds=60)
    return Completion(deps.jobs, cache, deps.batches, job_hooks=(webhooks.job_finished,),
                      batch_hooks=(webhooks.batch_finished,))

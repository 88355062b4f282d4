"""Observability pieces in process: the 500 handler, the correlation helpers, the queue
collector against a real Redis, the metrics recorded for a finished job."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
import structlog
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from shared.connections import create_redis
from shared.constants import CAPTURE_QUEUE, WEBHOOK_QUEUE
from shared.correlation import (
    bind_task_context,
    http_headers,
    parse_traceparent,
    task_headers,
    unbind_task_context,
    valid_request_id,
)
from shared.fair_queue import FairQueue
from shared.jobs import CaptureOptions, ImageFormat, Job, JobError, JobStatus, utcnow
from shared.logging import configure_logging
from shared.metrics import record_job_finished
from shared.queue import enqueue_capture, make_celery
from shared.settings import Settings
from shared.status_store import StatusStore
from tests.servers import free_port
from worker.exporter import QueueCollector, queued_job_id, scrape_client

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def _clean_log_context() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


# --- The 500 handler ----------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Shotline's JSON log lines of one test; the logging set-up restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config()
    configure_logging(level="INFO", fmt="json")
    buffer = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)


def test_unhandled_errors_are_500_with_the_request_id(
    settings: Settings, json_log: io.StringIO
) -> None:
    app = create_app(settings)

    @app.get("/test-only/boom/{thing}")
    async def boom(thing: str) -> None:
        raise RuntimeError(f"kaboom {thing}")

    async def call() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                failed = await client.get("/test-only/boom/1", headers={"X-Request-ID": "req-500"})
                return failed, await client.get("/metrics")

    failed, metrics = asyncio.run(call())
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal_error", "message": "internal server error",
                             "request_id": "req-500"}
    assert failed.headers["x-request-id"] == "req-500"
    # The traceback is logged, as JSON, with the request id.
    logged = [json.loads(line) for line in json_log.getvalue().splitlines()]
    [line] = [entry for entry in logged if entry["event"] == "unhandled error"]
    assert line["request_id"] == "req-500" and line["status"] == 500
    assert "RuntimeError: kaboom 1" in line["exception"]
    # ... and counted as a 500 of the route template.
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics.text) for s in family.samples}
    key = ("shotline_http_requests_total",
           (("handler", "/test-only/boom/{thing}"), ("method", "GET"), ("status", "500")))
    assert samples[key] == 1


def test_two_apps_in_one_process_have_their_own_metrics(settings: Settings) -> None:
    first: FastAPI = create_app(settings)
    second: FastAPI = create_app(settings)  # no "duplicated timeseries" error
    assert first is not second


# --- Correlation helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (TRACEPARENT, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", False),
        ("", False),
        (None, False),
    ],
)
def test_traceparent_is_checked_as_w3c_trace_context(header: str | None, valid: bool) -> None:
    assert parse_traceparent(header) == (header if valid else None)


def test_request_ids_are_checked() -> None:
    assert valid_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    assert valid_request_id("a" * 129) is None
    assert valid_request_id("bad id") is None
    assert valid_request_id("x\r\nInjected: 1") is None


def test_correlation_travels_from_context_to_task_headers_and_http_headers() -> None:
    assert task_headers(request_id=None) == {}
    with structlog.contextvars.bound_contextvars(request_id="req-1", traceparent=TRACEPARENT):
        assert task_headers(request_id="req-1") == {"request_id": "req-1",
                                                    "traceparent": TRACEPARENT}
        assert http_headers() == {"X-Request-ID": "req-1", "traceparent": TRACEPARENT}
        assert http_headers(request_id="req-2")["X-Request-ID"] == "req-2"
    assert http_headers() == {}


class FakeTaskRequest(dict[str, Any]):
    """A Celery task request as far as :func:`bind_task_context` reads it."""

    id = "task-1"


def test_task_context_binds_only_valid_values() -> None:
    bind_task_context(FakeTaskRequest(request_id="req-9", traceparent=TRACEPARENT))
    assert structlog.contextvars.get_contextvars() == {
        "request_id": "req-9", "traceparent": TRACEPARENT, "task_id": "task-1"}
    unbind_task_context()
    structlog.contextvars.bind_contextvars(worker="w1")  # bound by someone else: kept
    bind_task_context(FakeTaskRequest(request_id="bad id", traceparent="nope"))
    assert structlog.contextvars.get_contextvars() == {"worker": "w1", "task_id": "task-1"}
    unbind_task_context()
    assert structlog.contextvars.get_contextvars() == {"worker": "w1"}


# --- The queue collector ----------------------------------------------------------------------


def _gauges(collector: QueueCollector) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels["queue"]): s.value
            for family in collector.collect() for s in family.samples}


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_queue_collector_reads_depth_and_oldest_job_age(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    collector = QueueCollector(sync_redis, sync_redis)
    assert _gauges(collector) == {
        ("shotline_queue_depth", CAPTURE_QUEUE): 0, ("shotline_queue_depth", WEBHOOK_QUEUE): 0,
        ("shotline_queue_oldest_job_age_seconds", CAPTURE_QUEUE): 0,
    }

    async def create(ages: tuple[float, ...]) -> list[Job]:
        client = create_redis(settings.redis_url)
        store = StatusStore(client, ttl_seconds=600)
        jobs = []
        for age in ages:
            job = Job(id=f"job{age:g}", status=JobStatus.queued,
                      created_at=utcnow() - timedelta(seconds=age),
                      options=CaptureOptions(url="https://example.com"))
            await store.create(job)
            jobs.append(job)
        await client.aclose()
        return jobs

    oldest, newer = asyncio.run(create((90, 10)))
    celery = make_celery(settings)
    try:
        for job in (oldest, newer):  # in submission order: the oldest first
            enqueue_capture(celery, job.id, request_id=None)
    finally:
        celery.close()
    collector.clock = lambda: oldest.created_at.timestamp() + 90
    gauges = _gauges(collector)
    assert gauges[("shotline_queue_depth", CAPTURE_QUEUE)] == 2
    assert gauges[("shotline_queue_oldest_job_age_seconds", CAPTURE_QUEUE)] == pytest.approx(90)
    tail = sync_redis.lindex(CAPTURE_QUEUE, -1)
    assert tail is not None and queued_job_id(tail) == oldest.id


def test_queue_collector_counts_captures_waiting_their_turn(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    async def submit(ages_and_owners: tuple[tuple[float, str], ...]) -> None:
        client = create_redis(settings.redis_url)
        store = StatusStore(client, ttl_seconds=600)
        fair = FairQueue(client, store, ahead=1, stale_after=600)
        for age, owner in ages_and_owners:
            await fair.submit(Job(id=f"{owner}-{age:g}", status=JobStatus.queued,
                                  created_at=utcnow() - timedelta(seconds=age),
                                  options=CaptureOptions(url="https://example.com"),
                                  api_key_id=owner))
        await client.aclose()

    # Not released yet: nothing in the broker's list, all in the per-key lists.
    asyncio.run(submit(((10, "a"), (5, "a"), (90, "b"))))
    assert sync_redis.llen(CAPTURE_QUEUE) == 0
    collector = QueueCollector(sync_redis, sync_redis)
    now = sync_redis.time()[0]
    collector.clock = lambda: now
    gauges = _gauges(collector)
    assert gauges[("shotline_queue_depth", CAPTURE_QUEUE)] == 3
    assert gauges[("shotline_queue_oldest_job_age_seconds", CAPTURE_QUEUE)] == pytest.approx(90, abs=2)


def test_queue_collector_reports_nothing_when_redis_is_down() -> None:
    dead = scrape_client(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    assert list(QueueCollector(dead, dead).collect()) == []
    assert time.monotonic() - started < 1


def test_queued_job_id_ignores_other_messages() -> None:
    assert queued_job_id(b"not json") is None
    assert queued_job_id(json.dumps({"headers": {"task": "other"}, "body": "W10="})) is None


# --- Job metrics -----------------------------------------------------------------------------


@pytest.fixture
def sample() -> Callable[..., float]:
    def read(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return read


def test_a_finished_job_is_counted_once_with_its_durations(sample: Callable[..., float]) -> None:
    created = utcnow()
    job = Job(id="j1", status=JobStatus.failed, created_at=created,
              started_at=created + timedelta(seconds=3), finished_at=created + timedelta(seconds=5),
              options=CaptureOptions(url="https://example.com", format=ImageFormat.webp),
              error=JobError(code="timeout", message="too slow"))
    labels = {"outcome": "failed", "error_code": "timeout", "engine": "unit"}
    duration = {"engine": "unit", "format": "webp", "outcome": "failed"}
    before = (sample("shotline_jobs_total", **labels),
              sample("shotline_capture_duration_seconds_sum", **duration),
              sample("shotline_job_latency_seconds_count", outcome="failed"))
    record_job_finished(job, engine="unit")
    assert sample("shotline_jobs_total", **labels) == before[0] + 1
    assert sample("shotline_capture_duration_seconds_sum", **duration) == before[1] + 2
    assert sample("shotline_job_latency_seconds_count", outcome="failed") == before[2] + 1

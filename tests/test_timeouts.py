"""``timeout_ms`` is the real bound of a capture: a page that never answers fails after one
attempt unless the request asks for ``retries``; Shotline's own faults are still retried.

Real worker (default ``CAPTURE_MAX_ATTEMPTS`` of 3), API, Redis and Chromium, against a
socket that accepts connections and never answers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from api.sync import wait_seconds
from shared.errors import CaptureTimeout, EngineError, ResultNotStored
from shared.jobs import CaptureOptions, Job, JobStatus, new_job_id, utcnow
from tests.conftest import ProcessFactory
from tests.polling import submit, wait_for_job
from worker.pipeline import attempt_limit, may_retry


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    module_processes.worker()  # CAPTURE_MAX_ATTEMPTS left at its default (3)
    return module_processes.api()


@pytest.fixture(scope="module")
def silent_url() -> Iterator[str]:
    """A URL whose server accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/never"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _seconds(job: dict[str, object]) -> float:
    created = datetime.fromisoformat(str(job["created_at"]))
    finished = datetime.fromisoformat(str(job["finished_at"]))
    return (finished - created).total_seconds()


def test_a_page_that_never_answers_fails_after_one_attempt_within_its_timeout(
    base: str, client: httpx.Client, silent_url: str
) -> None:
    accepted = submit(client, base, url=silent_url, timeout_ms=3000)
    job = wait_for_job(client, accepted["status_url"], timeout=60)
    assert job["status"] == "failed" and job["error"]["code"] == "timeout", job
    assert job["attempts"] == 1, job
    # Before: three attempts plus backoff, ~20 s for 3 s. Now one attempt, queueing included.
    assert 3.0 <= _seconds(job) < 9.0, job


def test_retries_asks_for_further_attempts_after_a_timeout(
    base: str, client: httpx.Client, silent_url: str
) -> None:
    accepted = submit(client, base, url=silent_url, timeout_ms=1000, retries=1)
    job = wait_for_job(client, accepted["status_url"], timeout=60)
    assert job["status"] == "failed" and job["error"]["code"] == "timeout", job
    assert job["attempts"] == 2, job


def test_retries_is_bounded(base: str, client: httpx.Client, silent_url: str) -> None:
    response = client.post(f"{base}/v1/screenshots", json={"url": silent_url, "retries": 4})
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == "retries"


def _job(attempts: int, **options: object) -> Job:
    return Job(id=new_job_id(), status=JobStatus.running, created_at=utcnow(), attempts=attempts,
               options=CaptureOptions(url="https://example.com", **options))


@pytest.mark.parametrize(
    ("error", "attempts", "retries", "retried"),
    [
        (CaptureTimeout("slow page"), 1, 0, False),  # the page's fault: not retried unasked
        (CaptureTimeout("slow page"), 1, 2, True),
        (CaptureTimeout("slow page"), 3, 2, False),  # 1 + 2 retries used up
        (EngineError("renderer crashed"), 1, 0, True),  # Shotline's fault: retried
        (EngineError("renderer crashed"), 3, 0, False),  # up to CAPTURE_MAX_ATTEMPTS
        (ResultNotStored("S3 hiccup"), 2, 0, True),
    ],
)
def test_only_shotlines_faults_are_retried_unasked(
    error: CaptureTimeout | EngineError, attempts: int, retries: int, retried: bool
) -> None:
    assert may_retry(error, _job(attempts, retries=retries), max_attempts=3) is retried


def test_retries_above_the_attempt_limit_are_not_taken_for_a_dead_worker() -> None:
    # A 4th attempt asked for by retries=3 is legitimate, not a redelivery loop.
    assert attempt_limit(_job(4, retries=3), max_attempts=3) == 4


def test_a_synchronous_capture_waits_for_every_attempt_it_asked_for() -> None:
    assert wait_seconds(CaptureOptions(url="https://example.com", timeout_ms=3000)) == 8.0
    # 3 attempts of 3 s, two pauses of up to 10 s, the 5 s margin.
    assert wait_seconds(CaptureOptions(url="https://example.com", timeout_ms=3000,
                                       retries=2)) == 34.0

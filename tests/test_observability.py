"""Observability on real processes: one request id from the API through the worker, the
SnapAPI engine and storage in JSON logs; the Prometheus metrics of the API and of the
worker's multiprocess exporter; the 500 handler; the alert rules and the dashboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ProcessFactory
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.polling import wait_for_job
from tests.servers import REPO_ROOT, free_port, wait_for_port

#: What a customer quotes when they complain.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DEPLOY = REPO_ROOT / "deploy"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Stack:
    """An API and a worker (SnapAPI engine, JSON logs, metrics exporter) on one Redis DB."""

    base: str
    worker_log: Path
    api_logs: Path
    worker_pid: int
    metrics_url: str


@pytest.fixture(scope="module")
def snapapi() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key="sk_test_observability") as snap:
        yield snap


@pytest.fixture(scope="module")
def stack(module_processes: ProcessFactory, snapapi: SnapApiStandIn) -> Stack:
    port = free_port()
    env = {
        "SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": "sk_test_observability",
        "SHOTLINE_SNAPAPI_BASE_URL": snapapi.base_url, "SHOTLINE_LOG_FORMAT": "json",
        "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "2", "SHOTLINE_WORKER_METRICS_PORT": str(port),
    }
    worker, worker_log = module_processes.worker(concurrency=2, **env)
    wait_for_port(port, process=worker)
    base = module_processes.api(**env)
    return Stack(base, worker_log, module_processes.tmp_path, worker.pid,
                 f"http://127.0.0.1:{port}/metrics")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (Celery's banner and such left out)."""
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def wait_for_line(path: Path, **fields: Any) -> list[dict[str, Any]]:
    """All JSON lines of ``path`` once one has every field of ``fields`` (lines are written
    just after the status record moves, so the poller may see the job finish first)."""
    deadline = time.monotonic() + 10
    while True:
        lines = json_lines(path)
        if any(all(line.get(k) == v for k, v in fields.items()) for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"no line with {fields} in {path}:\n{path.read_text()[-3000:]}")
        time.sleep(0.05)


def scrape(client: httpx.Client, url: str) -> Samples:
    """Every sample of a /metrics page, parsed by prometheus_client's own parser."""
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a labelled counter appears on first use)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def submit_traced(client: httpx.Client, base: str, request_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"{base}/v1/screenshots", json=body,
                           headers={"X-Request-ID": request_id, "traceparent": TRACEPARENT})
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == request_id
    return wait_for_job(client, response.json()["status_url"])


# --- One request id end to end --------------------------------------------------------------


def test_a_request_id_follows_the_capture_through_worker_engine_and_storage(
    stack: Stack, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    snapapi.reset()
    job = submit_traced(client, stack.base, "complaint-4711", url="http://127.0.0.1:9/ok")
    assert job["status"] == "succeeded", job

    lines = wait_for_line(stack.worker_log, job_id=job["id"], event="job succeeded")
    # Given only the request id, the operator finds the job and every step of it.
    followed = [line for line in lines if line.get("request_id") == "complaint-4711"]
    events = [line["event"] for line in followed if line.get("job_id") == job["id"]]
    assert events == ["job running", "SnapAPI answered.", "result stored", "job succeeded"], events
    for line in followed:
        assert line["traceparent"] == TRACEPARENT and line["level"] in ("info", "warning")
    steps = {line["event"]: line for line in followed}
    assert steps["job running"]["status"] == "running"
    assert steps["job running"]["engine"] == "snapapi" and steps["job running"]["url"]
    assert steps["SnapAPI answered."]["status"] == 200
    assert steps["result stored"]["storage"] == "local" and steps["result stored"]["bytes"] > 0
    assert steps["job succeeded"]["status"] == "succeeded"
    assert steps["job succeeded"]["duration_ms"] >= 0

    # The API's line for the same request, in its own log.
    api_lines = [line for log in stack.api_logs.glob("api-*.log") for line in json_lines(log)]
    [queued] = [line for line in api_lines if line.get("event") == "job queued"
                and line.get("job_id") == job["id"]]
    assert queued["request_id"] == "complaint-4711" and queued["traceparent"] == TRACEPARENT
    assert queued["status"] == "queued"

    # SnapAPI got the same correlation headers.
    [call] = snapapi.requests
    assert call.headers["x-request-id"] == "complaint-4711"
    assert call.headers["traceparent"] == TRACEPARENT


def test_a_failed_capture_logs_its_error_code_under_the_request_id(
    stack: Stack, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    snapapi.reset()
    snapapi.script([400])
    job = submit_traced(client, stack.base, "complaint-4712", url="http://127.0.0.1:9/refused")
    assert job["status"] == "failed" and job["error"]["code"] == "engine_rejected", job

    lines = wait_for_line(stack.worker_log, job_id=job["id"], event="job failed")
    [failed] = [line for line in lines if line.get("job_id") == job["id"]
                and line["event"] == "job failed"]
    assert failed["request_id"] == "complaint-4712" and failed["traceparent"] == TRACEPARENT
    assert failed["error_code"] == "engine_rejected" and failed["status"] == "failed"
    assert "400" in failed["error"] and failed["url"] == "http://127.0.0.1:9/refused"


def test_a_retried_capture_keeps_its_correlation(
    stack: Stack, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    snapapi.reset()
    snapapi.script([(503, {"Retry-After": "1"})])
    job = submit_traced(client, stack.base, "complaint-4713", url="http://127.0.0.1:9/retry")
    assert job["status"] == "succeeded" and job["attempts"] == 2, job

    lines = wait_for_line(stack.worker_log, job_id=job["id"], event="job succeeded")
    mine = [line for line in lines if line.get("job_id") == job["id"]]
    assert [(line["event"], line["attempt"]) for line in mine] == [
        ("job running", 1), ("SnapAPI answered.", 1), ("job attempt failed; retrying", 1),
        ("job running", 2), ("SnapAPI answered.", 2), ("result stored", 2),
        ("job succeeded", 2),
    ]
    # The retry is a new Celery message: the trace context came along in its headers.
    assert all(line["request_id"] == "complaint-4713" for line in mine)
    assert all(line["traceparent"] == TRACEPARENT for line in mine)
    assert [call.headers["traceparent"] for call in snapapi.requests] == [TRACEPARENT] * 2


def test_a_request_without_id_gets_one_that_reaches_the_worker(
    stack: Stack, client: httpx.Client
) -> None:
    response = client.post(f"{stack.base}/v1/screenshots", json={"url": "http://127.0.0.1:9/x"},
                           headers={"traceparent": "not-a-traceparent"})
    made = response.headers["x-request-id"]
    job = wait_for_job(client, response.json()["status_url"])
    lines = wait_for_line(stack.worker_log, job_id=job["id"], event="job succeeded")
    mine = [line for line in lines if line.get("job_id") == job["id"]]
    assert mine and all(line["request_id"] == made for line in mine)
    assert all("traceparent" not in line for line in mine)  # an invalid one is dropped


# --- Prometheus --------------------------------------------------------------------------------


def test_worker_exporter_counts_successes_and_failures(
    stack: Stack, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    before = scrape(client, stack.metrics_url)
    snapapi.reset()
    ok = submit_traced(client, stack.base, "metrics-ok", url="http://127.0.0.1:9/m", format="jpeg")
    snapapi.script([400])
    bad = submit_traced(client, stack.base, "metrics-bad", url="http://127.0.0.1:9/m")
    assert (ok["status"], bad["status"]) == ("succeeded", "failed")
    after = scrape(client, stack.metrics_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("shotline_jobs_total", outcome="succeeded", error_code="none", engine="snapapi") == 1
    assert moved("shotline_jobs_total", outcome="failed", error_code="engine_rejected",
                 engine="snapapi") == 1
    assert moved("shotline_capture_duration_seconds_count", engine="snapapi", format="jpeg",
                 outcome="succeeded") == 1
    assert moved("shotline_job_latency_seconds_count", outcome="failed") == 1
    assert moved("shotline_snapapi_response_seconds_count", status="200") == 1
    assert moved("shotline_snapapi_response_seconds_count", status="400") == 1
    # Both pool children are alive and counted; nothing is waiting in the queues.
    assert value(after, "shotline_worker_processes") == 2
    assert value(after, "shotline_queue_depth", queue="shotline.capture") == 0
    assert value(after, "shotline_queue_depth", queue="shotline.webhooks") == 0
    assert value(after, "shotline_queue_oldest_job_age_seconds", queue="shotline.capture") == 0


def test_a_killed_pool_child_is_forgotten_and_its_counts_kept(
    stack: Stack, client: httpx.Client
) -> None:
    before = scrape(client, stack.metrics_url)
    succeeded = value(before, "shotline_jobs_total", outcome="succeeded", error_code="none",
                      engine="snapapi")
    assert succeeded > 0
    children = _children(stack.worker_pid)
    assert len(children) == 2
    os.kill(children[0], signal.SIGKILL)  # no shutdown signal runs: its files stay behind
    deadline = time.monotonic() + 20
    while True:  # until the pool has replaced it and the new child has started
        after = scrape(client, stack.metrics_url)
        replaced = len(set(_children(stack.worker_pid)) - {children[0]}) == 2
        if replaced and value(after, "shotline_worker_processes") == 2:
            break
        assert time.monotonic() < deadline, f"still {value(after, 'shotline_worker_processes')}"
        time.sleep(0.1)
    metrics_dir = _metrics_dir(stack.worker_log)
    assert list(metrics_dir.glob(f"counter_{children[0]}.db"))  # its counts are kept
    assert not list(metrics_dir.glob(f"gauge_live*_{children[0]}.db"))
    assert value(after, "shotline_jobs_total", outcome="succeeded", error_code="none",
                 engine="snapapi") == succeeded


def _metrics_dir(worker_log: Path) -> Path:
    [started] = [line for line in json_lines(worker_log)
                 if line["event"] == "worker metrics exporter listening"]
    return Path(started["metrics_dir"])


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def test_api_metrics_count_requests_by_route_template_and_status(
    stack: Stack, client: httpx.Client
) -> None:
    before = scrape(client, f"{stack.base}/metrics")
    job = submit_traced(client, stack.base, "api-metrics", url="http://127.0.0.1:9/api")
    assert client.post(f"{stack.base}/v1/screenshots", json={"url": "ftp://x"}).status_code == 422
    assert client.get(f"{stack.base}/v1/jobs/nope").status_code == 404
    after = scrape(client, f"{stack.base}/metrics")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    submit = {"handler": "/v1/screenshots", "method": "POST"}
    assert moved("shotline_http_requests_total", **submit, status="202") == 1
    assert moved("shotline_http_requests_total", **submit, status="422") == 1
    assert moved("shotline_http_request_duration_seconds_count", **submit, status="202") == 1
    job_route = {"handler": "/v1/jobs/{job_id}", "method": "GET"}
    assert moved("shotline_http_requests_total", **job_route, status="200") >= 1
    assert moved("shotline_http_requests_total", **job_route, status="404") == 1
    handlers = {dict(labels).get("handler") for (name, labels) in after
                if name == "shotline_http_requests_total"}
    assert not any(job["id"] in (handler or "") for handler in handlers), handlers
    assert "/metrics" not in handlers
    assert value(after, "process_resident_memory_bytes") > 0


def test_api_metrics_count_submitted_jobs_by_outcome_engine_and_format(
    stack: Stack, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    before = scrape(client, f"{stack.base}/metrics")
    body = {"url": "http://127.0.0.1:9/outcomes", "format": "webp", "cache_ttl": 600}
    snapapi.delay = 1.5  # the first capture is still in flight when its twin arrives
    try:
        first = client.post(f"{stack.base}/v1/screenshots", json=body).json()
        twin = client.post(f"{stack.base}/v1/screenshots", json=body).json()
        wait_for_job(client, first["status_url"])
    finally:
        snapapi.delay = 0.0
    again = client.post(f"{stack.base}/v1/screenshots", json=body).json()
    blocked = client.post(f"{stack.base}/v1/screenshots",
                          json={"url": "http://169.254.169.254/", "format": "webp"})
    after = scrape(client, f"{stack.base}/metrics")
    assert (first["cached"], twin["cached"], again["status"]) == (False, True, "succeeded")
    assert blocked.status_code == 422 and blocked.json()["error"] == "url_blocked"

    def moved(outcome: str, reason: str = "none") -> float:
        labels = {"outcome": outcome, "reason": reason, "engine": "snapapi", "format": "webp"}
        name = "shotline_jobs_submitted_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert [moved("queued"), moved("shared"), moved("cached"), moved("refused", "url_blocked")] \
        == [1, 1, 1, 1]


def test_celery_logs_no_line_per_task_at_info(stack: Stack, client: httpx.Client) -> None:
    submit_traced(client, stack.base, "quiet-celery", url="http://127.0.0.1:9/quiet")
    events = [line.get("event", "") for line in json_lines(stack.worker_log)]
    assert "job succeeded" in events
    # Celery's own "Task … received" / "Task … succeeded in …s" lines are off at INFO.
    assert not [e for e in events if e.startswith("Task ")], events[-20:]


# --- Alert rules and dashboard -----------------------------------------------------------------


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return path


def test_alert_rules_pass_promtool_check() -> None:
    promtool = _promtool()
    for command in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        done = subprocess.run([promtool, *command], cwd=DEPLOY / "prometheus",
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_fire_at_their_thresholds_and_not_below() -> None:
    done = subprocess.run([_promtool(), "test", "rules", "alerts.test.yml"],
                          cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def _known_metric_names() -> set[str]:
    from prometheus_client import REGISTRY

    import shared.metrics as metrics

    names = {metrics.QUEUE_DEPTH, metrics.QUEUE_OLDEST_AGE,
             "shotline_http_requests_total", "shotline_http_request_duration_seconds_bucket"}
    for family in REGISTRY.collect():
        if family.name.startswith("shotline_"):
            names.add(f"{family.name}_total" if family.type == "counter" else family.name)
            if family.type == "histogram":
                names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    return names | set(re.findall(r"record: (\S+)", rules))


def test_rules_and_dashboard_only_use_metrics_that_exist() -> None:
    known = _known_metric_names()
    assert "shotline_webhook_attempts_total" in known and "shotline_jobs_total" in known
    dashboard = json.loads((DEPLOY / "grafana" / "shotline.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 20
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\bshotline[_:][A-Za-z0-9_:]*", rules + "\n".join(exprs)))
    assert used - known == set()
    assert {"shotline_queue_oldest_job_age_seconds", "shotline:snapapi_response_seconds:p95_5m",
            "shotline_webhook_attempts_total"} <= used

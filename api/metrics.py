"""``GET /metrics``: the API's Prometheus metrics, by prometheus-fastapi-instrumentator.

Request count and latency histograms labelled by route template (``/v1/jobs/{job_id}``,
never the raw path; unknown paths are ``none``), method and exact status code, plus the
process's CPU and memory; jobs submitted by outcome (queued, cached, shared, refused),
engine and format, and result cache lookups. Queue depth and the oldest queued job's age
are the worker exporter's (``SHOTLINE_WORKER_METRICS_PORT``): they are read from Redis at
scrape time, and every API replica serving them would repeat the same series and queries.
Each app gets a registry of its own, so several apps can live in one process (tests). With
``PROMETHEUS_MULTIPROC_DIR`` set (several server processes) the endpoint sums every
process's files instead.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as instrumentations

from shared.metrics import CACHE_LOOKUPS, CAPTURE_BUCKETS, JOBS_SUBMITTED

#: Path of the metrics endpoint (not itself measured).
METRICS_PATH: Final = "/metrics"

#: Latency buckets (seconds): most endpoints answer in milliseconds, the sync capture in seconds.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, *CAPTURE_BUCKETS[1:])


def install_metrics(app: FastAPI) -> CollectorRegistry:
    """Measure every request of ``app`` and serve the metrics at :data:`METRICS_PATH`."""
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    registry.register(CACHE_LOOKUPS)  # the result cache is consulted in the API process
    registry.register(JOBS_SUBMITTED)
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        should_ignore_untemplated=False,
        should_group_untemplated=True,
        excluded_handlers=[f"^{METRICS_PATH}$"],
        registry=registry,
    )
    instrumentator.add(
        instrumentations.requests(
            metric_namespace="shotline", metric_doc="HTTP requests by route, method and status.",
            registry=registry,
        ),
        instrumentations.latency(
            metric_namespace="shotline",
            metric_doc="HTTP request duration in seconds by route, method and status.",
            buckets=LATENCY_BUCKETS, registry=registry,
        ),
    )
    instrumentator.instrument(app).expose(
        app, endpoint=METRICS_PATH, include_in_schema=True, tags=["health"],
        summary="Prometheus metrics",
    )
    return registry

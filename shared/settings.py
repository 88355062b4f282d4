"""Shotline's settings: one pydantic-settings class, built once at each entry point.

Every setting is read from the environment with the ``SHOTLINE_`` prefix (or from ``.env``).
Core code never reads the environment: it receives a :class:`Settings` instance.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.constants import DEFAULT_MAX_REQUEST_BYTES, SECRET_KEY_FILE
from shared.webhooks.signing import parse_secret

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Most capture threads a worker runs by default (the threads pool, see ``WORKER_POOL``).
MAX_DEFAULT_WORKER_THREADS = 64

DEFAULT_WEBHOOK_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All of Shotline's configuration; see the settings table in the README."""

    model_config = SettingsConfigDict(
        env_prefix="SHOTLINE_", env_file=".env", extra="ignore", frozen=True
    )

    # --- Redis and Celery -------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = Field(default=None, description="Celery broker; REDIS_URL if unset.")

    # --- Capture engines --------------------------------------------------------------
    engine: Literal["chromium", "snapapi"] = "chromium"
    chromium_path: str | None = Field(
        default=None, description="Chromium binary; Playwright's own if installed, else the system one."
    )
    chromium_no_sandbox: bool | None = Field(
        default=None, description="Pass --no-sandbox; default: only when running as root."
    )
    chromium_js_heap_mb: int = Field(
        default=512, ge=16, description="Cap of each page renderer's JavaScript heap, in MiB."
    )
    chromium_memory_mb: int = Field(
        default=2048, ge=256, description="Cap of each Chromium process's memory (data), in MiB."
    )
    chromium_warm_contexts: int = Field(
        default=1, ge=0, le=8,
        description="Browser contexts opened ahead of demand per worker process, at least (one"
        " per capture in flight when more run at once); each serves one job only; 0 opens"
        " each job's context when the job starts.",
    )
    chromium_fast_screenshot: bool = Field(
        default=True,
        description="Encode viewport PNGs with Chromium's faster PNG compression (same pixels,"
        " somewhat larger files).",
    )
    ffmpeg_path: str | None = Field(
        default=None, description="ffmpeg binary encoding scroll videos; default: ffmpeg on PATH."
    )
    snapapi_key: SecretStr | None = None
    snapapi_base_url: str = "https://api.snapapi.pics"
    snapapi_max_concurrency: int = Field(default=4, ge=1)
    capture_max_attempts: int = Field(default=3, ge=1, le=10)
    max_result_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)

    # --- Storage ----------------------------------------------------------------------
    storage: Literal["local", "s3"] = "local"
    data_dir: Path = Path("data")
    public_base_url: str = "http://127.0.0.1:8000"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint that download links point at, when clients reach S3 by another"
        " address than Shotline does (MinIO in Docker Compose: http://localhost:9000).",
    )
    url_ttl_seconds: int = Field(
        default=3600, ge=1, le=7 * 24 * 3600, description="Lifetime of download URLs (S3 caps it at 7 days)."
    )
    result_retention_seconds: int | None = Field(
        default=None, ge=1,
        description="Delete results this long after their capture (API keys may override it);"
        " unset: keep them until deleted. For large buckets an S3 lifecycle rule on"
        " results/ is the alternative (see the README).",
    )
    credentials_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s), comma-separated (the first encrypts), for the credentials"
        " of API keys' own buckets; unset: derived from SECRET_KEY.",
    )
    retention_sweep_interval_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How often workers delete expired results."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs local download URLs; generated under DATA_DIR when unset.",
    )

    # --- API --------------------------------------------------------------------------
    max_request_bytes: int = Field(
        default=DEFAULT_MAX_REQUEST_BYTES, ge=1024, description="Largest request body the API reads."
    )

    # --- Jobs -------------------------------------------------------------------------
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    visibility_timeout_seconds: int = Field(
        default=600,
        ge=5,
        description="Seconds before an unacknowledged task is redelivered (must exceed the"
        " longest capture plus retry delays).",
    )

    queued_deadline_seconds: int = Field(
        default=1800,
        ge=10,
        description="How long a released job may stay queued before the sweeper presumes its"
        " queue message lost and enqueues it again (jobs waiting their turn in the fair"
        " queue are exempt).",
    )
    running_grace_seconds: int = Field(
        default=60,
        ge=5,
        description="Seconds past a running job's own timeout after which the sweeper presumes"
        " its worker dead.",
    )
    dispatch_ahead: int = Field(
        default=8,
        ge=1,
        le=10000,
        description="Captures the dispatchers keep released to the broker but not started."
        " Lower: fairer between API keys (a key's new job waits behind at most this many);"
        " higher: workers refill faster. With fast engines set it to at least the fleet's"
        " capture slots.",
    )
    sweeper: bool = Field(
        default=True, description="Run the sweeper in this worker (one worker leads at a time)."
    )
    sweep_interval_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often the sweeper looks for stuck jobs."
    )
    sweep_max_recoveries: int = Field(
        default=3,
        ge=1,
        description="Recoveries (re-enqueues by the sweeper) before a stuck job fails as lost.",
    )
    shutdown_timeout_seconds: float = Field(
        default=70.0,
        ge=0,
        description="On SIGTERM a worker lets running captures finish for at most this long,"
        " then requeues them.",
    )

    # --- Fleet-wide limits and browser hygiene -------------------------------------------
    snapapi_slot_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="How long a task waits for a free SnapAPI slot before it goes back to the"
        " queue (without counting an attempt).",
    )
    chromium_recycle_captures: int = Field(
        default=200, ge=1, description="Relaunch Chromium after this many captures."
    )
    chromium_recycle_rss_mb: int = Field(
        default=1024,
        ge=64,
        description="Relaunch Chromium once it (with its children) uses this many MB of resident"
        " memory of its own (pages shared between its processes counted in none).",
    )

    # --- URL policy -------------------------------------------------------------------
    allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    allowed_ports: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [80, 443, 8080, 8443])

    # --- Webhooks ---------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        default=None, description="whsec_ secret signing webhooks of jobs without an API key."
    )
    webhook_previous_secret: SecretStr | None = Field(
        default=None, description="The secret being rotated out: it signs too until it expires."
    )
    webhook_previous_secret_expires_at: datetime | None = Field(
        default=None,
        description="When the previous secret stops signing (ISO 8601 or Unix seconds);"
        " unset: until it is removed.",
    )
    webhook_retry_schedule: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_SCHEDULE)
    )
    webhook_timeout_seconds: float = Field(
        default=15, gt=0, le=60, description="Limit of one delivery attempt, connection included."
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, le=256, description="Deliveries in flight per webhook worker."
    )

    # --- Monitors (scheduled captures compared with the last good one) -------------------
    monitor_scheduler: bool = Field(
        default=True,
        description="Run the monitor scheduler in this worker (any number may run: each slot"
        " is claimed atomically).",
    )
    monitor_max_per_key: int = Field(default=100, ge=0, description="Monitors one key may have.")
    monitor_min_interval_seconds: int = Field(
        default=60, ge=1, description="Shortest interval_seconds a monitor may have.",
    )
    monitor_failures_before_alert: int = Field(
        default=3, ge=1, description="Failed runs in a row before monitor.failed is sent.",
    )

    # --- Multi-tenant edge: API keys, limits, reuse of captures ------------------------
    auth: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="API keys: 'auto' requires one as soon as any key exists, 'required' always,"
        " 'off' never (a trusted network).",
    )
    rate_limit: str = Field(
        default="600/minute",
        description="Default per-key request rate (moving window), e.g. '60/minute', '10/second'.",
    )
    api_key_cache_seconds: float = Field(
        default=5.0, ge=0, le=300,
        description="How long an API process keeps a key's record before reading it again: a"
        " revoked key (or a key's new rate limit or quota) takes effect within this bound in"
        " every API process; 0 reads Redis on every request.",
    )
    monthly_quota: int | None = Field(
        default=None, ge=0, description="Default captures per key and calendar month (UTC); none: unlimited."
    )
    cache_ttl_seconds: int = Field(
        default=3600, ge=0, le=30 * 24 * 3600,
        description="Default age up to which a stored capture answers an identical request; 0 disables"
        " reuse (result cache and single-flight).",
    )
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)

    # --- Processes and logs -----------------------------------------------------------
    worker_pool: Literal["auto", "prefork", "threads"] = Field(
        default="auto",
        description="Celery pool of capture workers. auto: prefork for the chromium engine (CPU"
        " bound: a process per core), threads for snapapi (I/O bound: many captures waiting at"
        " once on the process's one event loop).",
    )
    worker_concurrency: int | None = Field(
        default=None, ge=1,
        description="Captures at once per worker: pool processes (prefork, default the CPU count)"
        " or threads (threads, default SNAPAPI_MAX_CONCURRENCY up to 64: more threads could only"
        " wait for a slot).",
    )
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    worker_metrics_port: int = Field(
        default=0, ge=0, le=65535,
        description="Port of the worker's Prometheus exporter (all interfaces); 0 = off.",
    )

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [ipaddress.ip_network(str(item), strict=False) for item in value]
        return value

    @field_validator("allowed_ports", "webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_int_list(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '60/minute': {value!r}") from exc
        return value

    @field_validator("webhook_secret", "webhook_previous_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_secret(value.get_secret_value(), strict=True)
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[int]) -> list[int]:
        if len(value) > 20 or any(delay < 0 or delay > 7 * 24 * 3600 for delay in value):
            raise ValueError("at most 20 delays, each 0 to 604800 seconds")
        return value

    @field_validator("snapapi_base_url", "public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def effective_worker_pool(self) -> Literal["prefork", "threads"]:
        """The capture workers' Celery pool: ``WORKER_POOL``, or the engine's (see there)."""
        if self.worker_pool != "auto":
            return self.worker_pool
        return "threads" if self.engine == "snapapi" else "prefork"

    @property
    def effective_worker_concurrency(self) -> int:
        """Captures at once per worker: ``WORKER_CONCURRENCY``, or the pool's default."""
        if self.worker_concurrency is not None:
            return self.worker_concurrency
        if self.effective_worker_pool == "threads" and self.engine == "snapapi":
            # More threads than the plan's slots could only wait for one.
            return min(self.snapapi_max_concurrency, MAX_DEFAULT_WORKER_THREADS)
        return os.cpu_count() or 2

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker URL: ``BROKER_URL`` or, when unset, ``REDIS_URL``."""
        return self.broker_url or self.redis_url

    @cached_property
    def signing_key(self) -> bytes:
        """Key for HMAC-signed local download URLs.

        ``SECRET_KEY`` when set; otherwise a random key generated once and kept in
        ``DATA_DIR`` so that the API and workers on this machine agree on it.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            candidate = path.with_suffix(f".{os.getpid()}.tmp")
            candidate.write_text(secrets.token_urlsafe(32))
            candidate.chmod(0o600)
            try:
                os.link(candidate, path)  # atomic: the first writer wins
            except FileExistsError:
                pass
            finally:
                candidate.unlink()
        return path.read_text().strip().encode()


def get_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (and ``.env``), applying ``overrides``."""
    return Settings(**overrides)  # type: ignore[arg-type]

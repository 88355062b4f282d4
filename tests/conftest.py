"""Fixtures on real parts: a private redis-server, a page server, settings for them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config

from shared.constants import CAPTURE_QUEUE, WEBHOOK_QUEUE
from shared.settings import Settings
from tests.moto import run_moto
from tests.servers import (
    REPO_ROOT,
    PageServer,
    child_env,
    free_port,
    python_command,
    run_redis,
    stop_process,
    wait_for_port,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server started for this test session on a free port."""
    with run_redis(tmp_path_factory.mktemp("redis")) as (_process, port):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    yield redis_server


@pytest.fixture(scope="session")
def page_server() -> Iterator[PageServer]:
    """The test pages (tests/pages) served on 127.0.0.1."""
    with PageServer() as server:
        yield server


def base_env(redis_url: str, data_dir: Path) -> dict[str, str]:
    """SHOTLINE_* settings for tests, as environment variables (for child processes)."""
    return {
        "SHOTLINE_REDIS_URL": redis_url,
        "SHOTLINE_DATA_DIR": str(data_dir),
        "SHOTLINE_ALLOWED_NETWORKS": "127.0.0.0/8",
        "SHOTLINE_SECRET_KEY": "test-signing-secret",
        "SHOTLINE_LOG_FORMAT": "console",
        "SHOTLINE_WORKER_CONCURRENCY": "1",
        # Tests capture the same page many times and count captures: no reuse unless a test
        # turns the result cache on (tests/test_multitenant_*.py do).
        "SHOTLINE_CACHE_TTL_SECONDS": "0",
        # Tests poll fast from one address; rate limits are tested with their own keys.
        "SHOTLINE_RATE_LIMIT": "100000/minute",
    }


@pytest.fixture
def shotline_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """This test's settings as environment variables (Redis DB 0, emptied per test)."""
    return base_env(redis_url, tmp_path / "data")


#: Redis DBs free for module-scoped settings (DB 0 is the per-test one). A module's DB goes
#: back here when its module ends, so any number of modules can use them in turn.
_free_module_dbs: list[int] = list(range(1, 16))


@pytest.fixture(scope="module")
def module_env(redis_server: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[dict[str, str]]:
    """Settings shared by one test module's processes, on a Redis DB of its own (emptied
    before and after, and given back when the module ends)."""
    if not _free_module_dbs:
        raise RuntimeError("all 15 module Redis DBs are in use at once: a module-scoped fixture"
                           " outlives its module?")
    db = _free_module_dbs.pop(0)
    url = redis_server.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield base_env(url, tmp_path_factory.mktemp("data"))
        client.flushdb()
    finally:
        client.close()
        _free_module_dbs.append(db)


@pytest.fixture
def make_settings(shotline_env: dict[str, str]) -> Callable[..., Settings]:
    """Factory: this test's settings, with keyword overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            key.removeprefix("SHOTLINE_").lower(): value for key, value in shotline_env.items()
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """This test's settings with no overrides."""
    return make_settings()


def wait_until_ready(process: subprocess.Popen[bytes], log_path: Path, what: str) -> None:
    """Wait (60 s at most) for a Celery worker's log to say it is ready; RuntimeError with the
    log's end if it exits or takes longer."""
    deadline = time.monotonic() + 60
    while b"ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)


class ProcessFactory:
    """Starts real child processes (API, worker) for a test and stops them afterwards."""

    def __init__(self, tmp_path: Path, base_env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.base_env = base_env
        self.processes: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> tuple[
        subprocess.Popen[bytes], Path
    ]:
        log_path = self.tmp_path / f"{name}-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args, env=child_env({**self.base_env, **env}), stdout=log,
                stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True,
            )
        self.processes.append(process)
        return process, log_path

    def worker(self, *, concurrency: int | str = 1, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
        """A Celery worker (prefork pool), waited for until it reports ready."""
        process, log_path = self._spawn("worker", python_command(
            "-m", "celery", "-A", "worker.app", "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "-Q", CAPTURE_QUEUE,
        ), env)
        wait_until_ready(process, log_path, "worker")
        return process, log_path

    def cli_worker(self, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
        """``shotline worker ARGS`` as users run it (pool and concurrency from the settings),
        waited for until it reports ready."""
        process, log_path = self._spawn(
            "worker", python_command("-m", "shotline.cli", "worker", *args), env)
        wait_until_ready(process, log_path, "shotline worker")
        return process, log_path

    def webhook_worker(self, *, concurrency: int | str = 4, **env: str
                       ) -> tuple[subprocess.Popen[bytes], Path]:
        """A Celery worker for the webhook queue (threads pool, dispatcher), waited for."""
        process, log_path = self._spawn("webhooks", python_command(
            "-m", "celery", "-A", "worker.app", "worker", "--pool", "threads",
            "--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", "webhooks@%h",
            "--without-gossip", "--without-mingle", "-Q", WEBHOOK_QUEUE,
        ), env)
        wait_until_ready(process, log_path, "webhook worker")
        return process, log_path

    def api(self, **env: str) -> str:
        """The API under uvicorn on a free port; returns its base URL."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process, log_path = self._spawn("api", python_command(
            "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log",
        ), {"SHOTLINE_PUBLIC_BASE_URL": base, **env})
        try:
            wait_for_port(port, process=process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"API did not start:\n{log_path.read_text()[-3000:]}") from exc
        return base

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            stop_process(process, timeout=20)
            # The worker runs in its own session: make sure nothing it started survives.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def processes(tmp_path: Path, shotline_env: dict[str, str]) -> Iterator[ProcessFactory]:
    """Factory for real API and worker processes on this test's settings."""
    factory = ProcessFactory(tmp_path, shotline_env)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_processes(
    tmp_path_factory: pytest.TempPathFactory, module_env: dict[str, str]
) -> Iterator[ProcessFactory]:
    """Like ``processes``, shared by a whole test module (start-up paid once)."""
    factory = ProcessFactory(tmp_path_factory.mktemp("logs"), module_env)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a moto S3 server started for this test session."""
    with run_moto(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_admin(moto_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client on moto, to set up buckets and look at objects independently."""
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client(
        "s3",
        endpoint_url=moto_endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    yield client
    client.close()

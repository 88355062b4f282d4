"""``shotline dev``: Redis (if needed), a worker and the API in one terminal."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import click

from shared.settings import Settings


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def local_redis(settings: Settings) -> Iterator[str]:
    """The configured Redis when it answers, else a private redis-server on a free port."""
    configured = "redis_url" in settings.model_fields_set
    if configured and _reachable(settings.redis_url):
        yield settings.redis_url
        return
    if configured:
        click.echo(f"Redis at {settings.redis_url} is not reachable; starting a local one.")
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException("redis-server is not installed: run `make install`.")
    directory = (settings.data_dir / "redis").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
         "--maxmemory-policy", "noeviction", "--logfile", str(directory / "redis.log")],
        start_new_session=True,  # Ctrl-C goes to us; we stop Redis last
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not _reachable(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(f"redis-server did not start; see {directory}/redis.log")
            time.sleep(0.05)
        click.echo(f"Started redis-server on {url} (data in {directory}).")
        yield url
    finally:
        _stop(process, 10)


@contextlib.contextmanager
def worker_process(
    redis_url: str, concurrency: int | None, *, shutdown_timeout: float = 70.0
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``shotline worker`` child using ``redis_url`` (its sweeper included); stopped on exit.

    The worker gets SIGTERM: running captures finish for up to ``shutdown_timeout`` seconds,
    the rest is requeued; only a worker that is still there well after that is killed.
    """
    env = dict(os.environ, SHOTLINE_REDIS_URL=redis_url)
    env.setdefault("SHOTLINE_LOG_FORMAT", "console")
    args = [sys.executable, "-m", "shotline.cli", "worker"]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    process = subprocess.Popen(args, env=env, start_new_session=True, cwd=Path.cwd())
    try:
        yield process
    finally:
        _stop(process, shutdown_timeout + 20)

"""``shotline dev``: Redis (if needed), a worker and the API in one terminal."""

from __future__ import annotations

import contextlib
import ctypes
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
    url_file = directory / DEV_REDIS_URL_FILE
    try:
        deadline = time.monotonic() + 10
        while not _reachable(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(f"redis-server did not start; see {directory}/redis.log")
            time.sleep(0.05)
        click.echo(f"Started redis-server on {url} (data in {directory}).")
        url_file.write_text(url)  # so that `shotline keys ...` finds it
        yield url
    finally:
        url_file.unlink(missing_ok=True)
        _stop(process, 10)


#: File (under DATA_DIR/redis) naming the URL of the redis-server `shotline dev` runs.
DEV_REDIS_URL_FILE = "url"


def dev_redis_url(settings: Settings) -> str | None:
    """The URL of the Redis a running `shotline dev` started, when REDIS_URL is not set."""
    if "redis_url" in settings.model_fields_set:
        return None
    path = (settings.data_dir / "redis" / DEV_REDIS_URL_FILE)
    if not path.exists():
        return None
    url = path.read_text().strip()
    return url if _reachable(url) else None


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if this process dies, even by SIGKILL.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def child_process(args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` running beside this process (same terminal, same process group, so Ctrl-C
    reaches both), stopped with SIGTERM (a warm shutdown) when the block ends."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    process = subprocess.Popen(args, cwd=Path.cwd(), preexec_fn=preexec)
    try:
        yield process
    finally:
        _stop(process, 30)


@contextlib.contextmanager
def worker_process(
    redis_url: str, concurrency: int | None, *, shutdown_timeout: float = 70.0,
    public_base_url: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``shotline worker`` child using ``redis_url`` (capture and webhook workers, the
    sweeper and the fair queue's dispatcher included); stopped on exit.

    The worker gets SIGTERM: running captures finish for up to ``shutdown_timeout`` seconds,
    the rest is requeued; only a worker that is still there well after that is killed.
    """
    env = dict(os.environ, SHOTLINE_REDIS_URL=redis_url)
    env.setdefault("SHOTLINE_LOG_FORMAT", "console")
    if public_base_url is not None:  # webhook bodies carry download links too
        env["SHOTLINE_PUBLIC_BASE_URL"] = public_base_url
    args = [sys.executable, "-m", "shotline.cli", "worker"]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    process = subprocess.Popen(args, env=env, start_new_session=True, cwd=Path.cwd())
    try:
        yield process
    finally:
        _stop(process, shutdown_timeout + 20)


#: File (under the data dir) holding the development API key that `shotline dev` creates.
DEV_KEY_FILE = "dev-api-key"


def ensure_dev_key(settings: Settings) -> Path:
    """The development API key's file, creating the key on first start.

    The key is kept in ``DATA_DIR`` (mode 0600, like any client credential file), so it stays
    the same across restarts; its record (hashed) is written to Redis when missing.
    """
    import asyncio

    from shared.apikeys import generate_key
    from shared.composition import build_key_store

    path = settings.data_dir / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _key_id, key = generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    key = path.read_text().strip()

    async def register() -> None:
        store = build_key_store(settings)
        try:
            await store.ensure(key, "development")
        finally:
            await store.redis.aclose()

    asyncio.run(register())
    return path

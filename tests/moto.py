"""moto's standalone S3 server as a child process, for tests that talk S3 over HTTP."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.servers import child_env, free_port, python_command, stop_process, wait_for_port


@contextlib.contextmanager
def run_moto(log_dir: Path, *, timeout: float = 60.0,
             env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start ``python -m moto.server`` on a free port; yield its endpoint URL; stop it.

    The server's output goes to ``log_dir/moto.log`` (read it when a test fails); ``env``
    adds to its environment (``MOTO_ENABLE_RECORDING``...).
    """
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "moto.log"
    endpoint = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            python_command("-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(env or {}),
        )
        try:
            wait_for_port(port, process=process, timeout=timeout)
            yield endpoint
        finally:
            stop_process(process)


def reset_moto(endpoint: str) -> None:
    """Forget every bucket and object the server holds (moto's ``/moto-api/reset``)."""
    httpx.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()

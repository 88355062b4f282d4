"""The ``shotline`` command line: in-process capture and the one-terminal dev stack."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
from PIL import Image

from tests.polling import submit, wait_for_job
from tests.servers import REPO_ROOT, PageServer, child_env, free_port, python_command, wait_for_port

CLI = ("-m", "shotline.cli")


def test_capture_writes_an_image(tmp_path: Path, page_server: PageServer) -> None:
    output = tmp_path / "shot.jpg"
    completed = subprocess.run(
        python_command(*CLI, "capture", page_server.url("/index.html"), "-o", str(output),
                       "--width", "400", "--height", "300"),
        env=child_env({"SHOTLINE_ALLOWED_NETWORKS": "127.0.0.0/8"}), cwd=REPO_ROOT,
        capture_output=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    with Image.open(io.BytesIO(output.read_bytes())) as image:
        assert image.format == "JPEG" and image.size == (400, 300)


def test_capture_refuses_blocked_urls(tmp_path: Path) -> None:
    completed = subprocess.run(
        python_command(*CLI, "capture", "http://169.254.169.254/", "-o", str(tmp_path / "x.png")),
        env=child_env({}), cwd=REPO_ROOT, capture_output=True, timeout=60,
    )
    assert completed.returncode != 0
    assert b"url_blocked" in completed.stderr
    assert not (tmp_path / "x.png").exists()


def _processes_with(marker: str) -> set[int]:
    """PIDs of live processes whose environment carries ``marker`` (inherited from our child)."""
    needle = f"SHOTLINE_TEST_MARKER={marker}".encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def test_dev_runs_everything_and_stops_cleanly(tmp_path: Path, page_server: PageServer) -> None:
    """`shotline dev` with no Redis configured starts its own, a worker and the API;
    SIGINT (Ctrl-C) stops all of it, leaving no Redis, worker or Chromium behind (every process
    it starts inherits a marker in its environment, so stragglers are found by that)."""
    port = free_port()
    marker = uuid.uuid4().hex
    env = child_env({"SHOTLINE_TEST_MARKER": marker,"SHOTLINE_DATA_DIR": str(tmp_path / "data"),
                     "SHOTLINE_ALLOWED_NETWORKS": "127.0.0.0/8",
                     "SHOTLINE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                     "SHOTLINE_WORKER_CONCURRENCY": "1"})
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(python_command(*CLI, "dev", "--port", str(port)), env=env,
                               cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for_port(port, process=process, timeout=60)
        base = f"http://127.0.0.1:{port}"
        # The development key `shotline dev` created (and printed) is required from now on.
        key = (tmp_path / "data" / "dev-api-key").read_text().strip()
        assert key.startswith("sl_")
        with httpx.Client(timeout=30) as anonymous:
            refused = anonymous.post(f"{base}/v1/screenshots", json={"url": page_server.url("/")})
            assert refused.status_code == 401
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
            accepted = submit(client, base, url=page_server.url("/index.html"))
            job = wait_for_job(client, accepted["status_url"], timeout=90)
            assert job["status"] == "succeeded", job
            assert client.get(job["result"]["url"]).status_code == 200
        # `shotline keys` finds the Redis `shotline dev` started; the new key works at once.
        created = subprocess.run(python_command(*CLI, "keys", "create", "second", "--json"),
                                 env=env, cwd=REPO_ROOT, capture_output=True, timeout=60)
        assert created.returncode == 0, created.stderr.decode()
        second = json.loads(created.stdout)["key"]
        with httpx.Client(timeout=30, headers={"X-API-Key": second}) as client:
            assert client.get(f"{base}/v1/jobs/{job['id']}").status_code == 404  # not its job
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "dev.log").read_text()
    assert "Started redis-server" in output
    assert f"export SHOTLINE_KEY=$(cat {tmp_path / 'data' / 'dev-api-key'})" in output
    assert f"Development API key: {key}" in output
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with(marker), "a process (Redis, worker, Chromium) outlived `shotline dev`"
    redis_log = tmp_path / "data" / "redis" / "redis.log"
    assert "ready to exit" in redis_log.read_text().lower() or "bye" in redis_log.read_text().lower()

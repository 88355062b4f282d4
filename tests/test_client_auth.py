"""The Python client and ``shotline submit`` with API keys, against a live API and worker.

Keys are real once the API has them (``shotline keys create``); before that the API ignores
credentials and these tests still check what the client sends.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from shotline.client import Client
from shotline.errors import ApiAuthError, ApiNotFound
from shotline.models import JobStatus
from tests.conftest import ProcessFactory
from tests.servers import REPO_ROOT, PageServer, child_env, python_command


class RecordingTransport(httpx.HTTPTransport):
    """The real HTTP transport, remembering each request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


def _create_key(env: dict[str, str], name: str) -> str:
    """A new API key (``shotline keys create``)."""
    completed = subprocess.run(python_command("-m", "shotline.cli", "keys", "create", name, "--json"),
                               env=child_env(env), cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0, completed.stderr
    key: str = json.loads(completed.stdout)["key"]
    return key


def test_the_key_goes_to_the_api_as_a_bearer_token_and_nowhere_else(
    processes: ProcessFactory, shotline_env: dict[str, str], page_server: PageServer
) -> None:
    key = _create_key(shotline_env, "sdk")
    processes.worker()
    base = processes.api()
    # The API signs download links for its PUBLIC_BASE_URL (127.0.0.1); reached as
    # "localhost", those links are on another origin, as S3 presigned URLs are.
    transport = RecordingTransport()
    with Client(base.replace("127.0.0.1", "localhost"), api_key=key, transport=transport) as keyed:
        shot = keyed.capture(page_server.url("/index.html"), width=200, height=150)
    assert shot.job.status is JobStatus.succeeded and shot.content.startswith(b"\x89PNG")
    to_api = [r for r in transport.sent if r.url.host == "localhost"]
    elsewhere = [r for r in transport.sent if r.url.host != "localhost"]
    assert to_api and all(r.headers["authorization"] == f"Bearer {key}" for r in to_api)
    assert all(r.headers["user-agent"].startswith("shotline-python/") for r in transport.sent)
    assert [r.url.path for r in elsewhere] == [f"/v1/files/results/{shot.job.id}.png"]
    assert "authorization" not in elsewhere[0].headers

    cli = subprocess.run(
        python_command("-m", "shotline.cli", "submit", page_server.url("/index.html"), "--wait",
                       "--api", base, "--json"),
        env=child_env({"SHOTLINE_KEY": key}), cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=90)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["status"] == "succeeded"


def test_keys_scope_what_the_client_sees(
    processes: ProcessFactory, shotline_env: dict[str, str], page_server: PageServer
) -> None:
    alice, bob = _create_key(shotline_env, "alice"), _create_key(shotline_env, "bob")
    processes.worker()
    base = processes.api()

    with Client(base, api_key=alice) as as_alice, Client(base, api_key=bob) as as_bob:
        shot = as_alice.capture(page_server.url("/index.html"), width=320, height=240)
        assert [job.id for job in as_alice.list_jobs()] == [shot.job.id]
        assert as_bob.list_jobs() == []
        with pytest.raises(ApiNotFound):
            as_bob.get(shot.job.id)

        batch = as_alice.submit_batch([page_server.url(f"/index.html?b={n}") for n in range(2)],
                                      width=200, height=150)
        done = as_alice.wait_batch(batch.id, timeout=60)
        assert done.finished and {job.status for job in done.jobs} == {"succeeded"}

    with Client(base) as anonymous, pytest.raises(ApiAuthError) as refused:
        anonymous.list_jobs()
    assert refused.value.status == 401 and refused.value.request_id
    with Client(base, api_key="sk_wrong") as wrong, pytest.raises(ApiAuthError):
        wrong.submit(page_server.url("/index.html"))

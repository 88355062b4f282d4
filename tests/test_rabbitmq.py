"""The core path with RabbitMQ as the Celery broker (``SHOTLINE_BROKER_URL=amqp://...``).

Runs when a RabbitMQ server answers on 127.0.0.1:5672 and ``rabbitmqctl`` can administer it
(each test gets a fresh virtual host, deleted afterwards); skipped otherwise, saying why.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from shared.constants import CAPTURE_QUEUE
from shared.queue import amqp_options, is_amqp, make_celery
from shared.settings import Settings
from tests.conftest import ProcessFactory
from tests.polling import submit, wait_for_job
from tests.servers import PageServer

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672


def _rabbitmqctl(*args: str) -> str:
    completed = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if completed.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A broker URL on a fresh RabbitMQ virtual host (guest/guest), removed afterwards."""
    try:
        socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=1).close()
    except OSError:
        pytest.skip(f"no RabbitMQ server on {AMQP_HOST}:{AMQP_PORT}")
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("RabbitMQ answers but rabbitmqctl is not installed to create a vhost")
    vhost = f"shotline-test-{uuid.uuid4().hex[:10]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
    except RuntimeError as exc:
        pytest.skip(f"cannot administer the local RabbitMQ: {exc}")
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _queues(vhost: str) -> dict[str, tuple[str, int]]:
    out = _rabbitmqctl("list_queues", "-p", vhost, "--quiet", "--no-table-headers",
                       "name", "type", "messages")
    rows = (line.split("\t") for line in out.splitlines() if line.strip())
    return {name: (kind, int(messages)) for name, kind, messages in rows}


def test_amqp_brokers_get_confirms_and_quorum_queues() -> None:
    assert is_amqp("amqp://guest@rabbit//") and is_amqp("AMQPS://rabbit/shotline")
    assert not is_amqp("redis://127.0.0.1:6379/0") and not is_amqp("rediss://cache:6380/0")
    app = make_celery(Settings(_env_file=None, broker_url="amqp://guest:guest@rabbit:5672/x"))
    assert app.conf.broker_transport_options == {"confirm_publish": True}
    queue = next(q for q in app.conf.task_queues if q.name == CAPTURE_QUEUE)
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert queue.exchange.type == "topic"
    redis_app = make_celery(Settings(_env_file=None))
    assert "confirm_publish" not in redis_app.conf.broker_transport_options
    assert len(amqp_options()["task_queues"]) == 2


def test_capture_and_retry_end_to_end_over_rabbitmq(
    processes: ProcessFactory, page_server: PageServer, amqp_url: str
) -> None:
    broker = {"SHOTLINE_BROKER_URL": amqp_url}
    processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="2", **broker)
    base = processes.api(**broker)
    vhost = amqp_url.rsplit("/", 1)[1]

    with httpx.Client(timeout=30) as client:
        accepted = submit(client, base, url=page_server.url("/index.html"), width=400, height=300)
        job = wait_for_job(client, accepted["status_url"])
        assert job["status"] == "succeeded", job
        assert (job["result"]["width"], job["result"]["height"]) == (400, 300)
        assert client.get(job["result"]["url"]).content.startswith(b"\x89PNG")

        # A timeout the request allows one retry for: the retry travels through RabbitMQ's
        # delayed delivery (countdown) back into the quorum queue, and the second attempt runs.
        slow = submit(client, base, url=page_server.url("/slow?ms=4000"), timeout_ms=1000,
                      retries=1)
        failed = wait_for_job(client, slow["status_url"], timeout=60)
        assert failed["status"] == "failed" and failed["error"]["code"] == "timeout", failed
        assert failed["attempts"] == 2

    # The last attempt's message is acknowledged just after its job is marked failed: give
    # the ack a moment to reach RabbitMQ before counting what is left in the queue.
    deadline = time.monotonic() + 15
    queues = _queues(vhost)
    while queues[CAPTURE_QUEUE] != ("quorum", 0) and time.monotonic() < deadline:
        time.sleep(0.5)
        queues = _queues(vhost)
    assert queues[CAPTURE_QUEUE] == ("quorum", 0)
    assert any(name.startswith("celery_delayed_") for name in queues), queues

"""Two customers on one Shotline: API keys, isolation, rate limits and quotas, idempotency,
the result cache with single-flight, synchronous captures, batches and signed render links.

Real Redis, two real API processes sharing it and a real Celery worker; the engine is
SnapAPI's stand-in, so every capture is one request it records (the engine-call counter).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import redis
from PIL import Image

from shared.apikeys import KeyStore, NewKey
from shared.connections import create_redis
from shared.settings import Settings
from shared.signing import render_link
from tests.conftest import ProcessFactory
from tests.fakes.snapapi_server import HANG, Reply, SnapApiStandIn
from tests.polling import wait_for_job
from tests.servers import REPO_ROOT, child_env, python_command

SNAP_KEY = "sk_test_multitenant"
_url_counter = iter(range(1_000_000))


def unique_url() -> str:
    """A page URL no other test captures (the stand-in never fetches it)."""
    return f"http://127.0.0.1:9/page-{next(_url_counter)}-{time.monotonic_ns()}"


@dataclass
class Stack:
    """The module's processes: two APIs on one Redis, one worker, the engine stand-in."""

    api_a: str
    api_b: str
    redis_url: str
    env: dict[str, str]
    snap: SnapApiStandIn

    def key(self, name: str = "customer", **options: Any) -> NewKey:
        """A new API key, created straight in Redis."""

        async def create() -> NewKey:
            client = create_redis(self.redis_url)
            try:
                return await KeyStore(client).create(name, **options)
            finally:
                await client.aclose()

        return asyncio.run(create())


@pytest.fixture(scope="module")
def snap() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key=SNAP_KEY) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def stack(module_processes: ProcessFactory, module_env: dict[str, str],
          snap: SnapApiStandIn) -> Stack:
    engine = {"SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": SNAP_KEY,
              "SHOTLINE_SNAPAPI_BASE_URL": snap.base_url, "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "1"}
    module_processes.worker(concurrency=2, **engine)
    api_env = {**engine, "SHOTLINE_CACHE_TTL_SECONDS": "3600"}
    return Stack(api_a=module_processes.api(**api_env), api_b=module_processes.api(**api_env),
                 redis_url=module_env["SHOTLINE_REDIS_URL"], env={**module_env, **engine},
                 snap=snap)


@pytest.fixture(autouse=True)
def _reset_stand_in(snap: SnapApiStandIn) -> None:
    snap.reset()


def client_for(key: NewKey | str) -> httpx.Client:
    plain = key if isinstance(key, str) else key.key
    return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {plain}"})


def submit(client: httpx.Client, base: str, **body: Any) -> httpx.Response:
    response = client.post(f"{base}/v1/screenshots", json=body)
    assert response.status_code in (200, 202), response.text
    return response


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def wait_for_batch(client: httpx.Client, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while not (batch := client.get(status_url).json())["done"]:
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
    result: dict[str, Any] = batch
    return result


# --- API keys and isolation ---------------------------------------------------------------


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(python_command("-m", "shotline.cli", *args), env=child_env(env),
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return completed


def test_keys_cli_create_list_revoke_and_hashed_storage(stack: Stack) -> None:
    import json

    created = json.loads(run_cli(stack.env, "keys", "create", "acme", "--json").stdout)
    assert set(created) >= {"id", "key", "webhook_secret"}
    assert created["key"].startswith(f"sl_{created['id']}_")
    assert created["webhook_secret"].startswith("whsec_")
    listed = run_cli(stack.env, "keys", "list").stdout
    assert created["id"] in listed and "acme" in listed and created["key"] not in listed

    # The plain key is nowhere in Redis: not in any key name, not in any value.
    plain = created["key"].encode()
    client = redis.Redis.from_url(stack.redis_url)
    try:
        dumped = b""
        for name in client.scan_iter(count=1000):
            dumped += name + b"\n"
            kind = client.type(name)
            if kind == b"hash":
                dumped += b"".join(_raw(k) + _raw(v) for k, v in client.hgetall(name).items())
            elif kind == b"string":
                dumped += client.get(name) or b""
            elif kind == b"set":
                dumped += b"".join(_raw(member) for member in client.smembers(name))
        assert plain not in dumped
        assert hashlib.sha256(plain).hexdigest().encode() in dumped
    finally:
        client.close()

    with client_for(created["key"]) as http:
        accepted = submit(http, stack.api_a, url=unique_url())
        assert accepted.status_code == 202
        wait_for_job(http, accepted.json()["status_url"])
        run_cli(stack.env, "keys", "revoke", created["id"])
        # Each API process re-reads a key's record once it is SHOTLINE_API_KEY_CACHE_SECONDS
        # old (5 s by default): the revocation takes effect within that bound.
        deadline = time.monotonic() + Settings.model_fields["api_key_cache_seconds"].default + 5
        while (refused := http.post(f"{stack.api_a}/v1/screenshots",
                                    json={"url": unique_url()})).status_code == 202:
            assert time.monotonic() < deadline, "the revoked key was still accepted"
            time.sleep(0.5)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized" and "revoked" in refused.json()["message"]
    assert "revoked" in run_cli(stack.env, "keys", "list").stdout


def test_requests_without_a_valid_key_are_401(stack: Stack) -> None:
    stack.key()  # at least one key exists: keys are required (SHOTLINE_AUTH=auto)
    with httpx.Client(timeout=30) as http:
        for headers in ({}, {"Authorization": "Bearer sl_0123456789abcdef_" + "x" * 43},
                        {"X-API-Key": "nonsense"}, {"Authorization": "Basic abc"}):
            response = http.post(f"{stack.api_a}/v1/screenshots", json={"url": unique_url()},
                                 headers=headers)
            assert response.status_code == 401, headers
            body = response.json()
            assert body["error"] == "unauthorized" and body["request_id"]
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert http.get(f"{stack.api_a}/v1/jobs/x").status_code == 401
        assert http.get(f"{stack.api_a}/healthz").status_code == 200


def test_another_keys_jobs_and_batches_are_404(stack: Stack) -> None:
    alice, bob = stack.key("alice"), stack.key("bob")
    with client_for(alice) as a, client_for(bob) as b:
        job = submit(a, stack.api_a, url=unique_url()).json()
        batch = a.post(f"{stack.api_a}/v1/batches", json={"urls": [unique_url()]}).json()
        # X-API-Key works as well as Bearer.
        own = httpx.get(job["status_url"], headers={"X-API-Key": alice.key})
        assert own.status_code == 200
        for url in (job["status_url"], f"{job['status_url']}/result", batch["status_url"]):
            response = b.get(url)
            assert response.status_code == 404, url
            assert response.json()["error"] == "not_found"
        wait_for_job(a, job["status_url"])
        wait_for_batch(a, batch["status_url"])
        assert b.get(f"{job['status_url']}/result").status_code == 404
        assert a.get(f"{job['status_url']}/result").status_code == 302


# --- Rate limits and quotas ---------------------------------------------------------------


def test_rate_limit_is_shared_by_two_api_processes(stack: Stack) -> None:
    limited, other = stack.key("limited", rate_limit="6/minute"), stack.key("other")
    with client_for(limited) as http, client_for(other) as neighbour:
        remaining = []
        for base in (stack.api_a, stack.api_b) * 3:
            response = http.get(f"{base}/v1/jobs/unknown")
            assert response.status_code == 404  # still counted, still with headers
            assert response.headers["x-ratelimit-limit"] == "6"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
            assert int(response.headers["x-ratelimit-reset"]) > time.time()
        assert remaining == [5, 4, 3, 2, 1, 0]
        for base in (stack.api_a, stack.api_b):
            over = http.post(f"{base}/v1/screenshots", json={"url": unique_url()})
            assert over.status_code == 429
            assert over.json()["error"] == "rate_limited"
            assert 1 <= int(over.headers["retry-after"]) <= 60
            assert over.headers["x-ratelimit-remaining"] == "0"
        # The other customer is not starved.
        fine = neighbour.get(f"{stack.api_b}/v1/jobs/unknown")
        assert fine.status_code == 404 and int(fine.headers["x-ratelimit-remaining"]) > 0
    assert stack.snap.bodies == []


def test_a_batch_counts_one_request_per_url(stack: Stack) -> None:
    with client_for(stack.key("batcher", rate_limit="5/minute")) as http:
        refused = http.post(f"{stack.api_a}/v1/batches",
                            json={"urls": [unique_url() for _ in range(6)]})
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        accepted = http.post(f"{stack.api_b}/v1/batches",
                             json={"urls": [unique_url() for _ in range(4)]})
        assert accepted.status_code == 202 and accepted.headers["x-ratelimit-remaining"] == "0"
    deadline = time.monotonic() + 30
    while len(stack.snap.bodies) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(stack.snap.bodies) == 4


def test_monthly_quota_counts_captures_not_cache_hits(stack: Stack) -> None:
    key = stack.key("small plan", monthly_quota=2)
    url = unique_url()
    with client_for(key) as http:
        first = submit(http, stack.api_a, url=url)
        wait_for_job(http, first.json()["status_url"])
        second = submit(http, stack.api_a, url=unique_url())
        wait_for_job(http, second.json()["status_url"])
        hit = submit(http, stack.api_b, url=url)  # a cache hit: free even at the quota
        assert hit.status_code == 200 and hit.json()["cached"] is True
        over = http.post(f"{stack.api_b}/v1/screenshots", json={"url": unique_url()})
        assert over.status_code == 429, over.text
        assert over.json()["error"] == "quota_exceeded" and int(over.headers["retry-after"]) > 0
    assert len(stack.snap.bodies) == 2


# --- Idempotency --------------------------------------------------------------------------


def test_idempotency_key_replays_and_refuses_other_bodies(stack: Stack) -> None:
    key = stack.key()
    body = {"url": unique_url(), "fresh": True}
    with client_for(key) as http:
        headers = {"Idempotency-Key": "order-42"}
        first = http.post(f"{stack.api_a}/v1/screenshots", json=body, headers=headers)
        again = http.post(f"{stack.api_b}/v1/screenshots", json=body, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        other = http.post(f"{stack.api_a}/v1/screenshots", json={**body, "width": 640},
                          headers=headers)
        assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
        wait_for_job(http, first.json()["status_url"])
    # Scoped per key: another customer's same Idempotency-Key is a different request.
    with client_for(stack.key()) as other_customer:
        fresh = other_customer.post(f"{stack.api_a}/v1/screenshots", json=body, headers=headers)
        assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]
        wait_for_job(other_customer, fresh.json()["status_url"])
    assert len(stack.snap.bodies) == 2


def test_concurrent_retry_is_409_then_replays_the_image(stack: Stack) -> None:
    key = stack.key()
    stack.snap.delay = 2.0
    body = {"url": unique_url(), "width": 320, "height": 200}
    headers = {"Idempotency-Key": "sync-1"}
    started = threading.Event()

    def first_call() -> httpx.Response:
        with client_for(key) as http:
            started.set()
            return http.post(f"{stack.api_a}/v1/screenshots/sync", json=body, headers=headers)

    with ThreadPoolExecutor(1) as pool, client_for(key) as http:
        future = pool.submit(first_call)
        started.wait()
        deadline = time.monotonic() + 10
        while not stack.snap.requests and time.monotonic() < deadline:
            time.sleep(0.02)  # the first request is now being handled
        concurrent = http.post(f"{stack.api_b}/v1/screenshots/sync", json=body, headers=headers)
        assert concurrent.status_code == 409, concurrent.text
        assert concurrent.json()["error"] == "idempotency_conflict"
        original = future.result()
        assert original.status_code == 200 and original.headers["content-type"] == "image/png"
        replay = http.post(f"{stack.api_b}/v1/screenshots/sync", json=body, headers=headers)
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
        assert replay.content == original.content
        assert replay.headers["x-shotline-job-id"] == original.headers["x-shotline-job-id"]
    assert len(stack.snap.bodies) == 1


def test_large_sync_response_is_replayed_from_its_job(stack: Stack) -> None:
    """An image too large to keep with the idempotency record is streamed again from
    storage on replay, without a second capture."""
    noise = Image.effect_noise((400, 400), 100).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "PNG")
    big = out.getvalue()
    assert len(big) > 256 * 1024
    stack.snap.script([Reply(status=200, headers={"Content-Type": "image/png"}, body=big)])
    body = {"url": unique_url(), "width": 400, "height": 400}
    headers = {"Idempotency-Key": "big-1"}
    with client_for(stack.key()) as http:
        first = http.post(f"{stack.api_a}/v1/screenshots/sync", json=body, headers=headers)
        assert first.status_code == 200 and first.content == big
        replay = http.post(f"{stack.api_b}/v1/screenshots/sync", json=body, headers=headers)
        assert replay.status_code == 200 and replay.content == big
        assert replay.headers["x-shotline-job-id"] == first.headers["x-shotline-job-id"]
    assert len(stack.snap.bodies) == 1


# --- Result cache and single-flight -------------------------------------------------------


def test_cache_hit_costs_no_capture_and_fresh_bypasses_it(stack: Stack) -> None:
    key = stack.key()
    url = unique_url()
    with client_for(key) as http:
        first = submit(http, stack.api_a, url=url, format="jpeg", quality=70)
        assert first.status_code == 202 and first.json()["cached"] is False
        done = wait_for_job(http, first.json()["status_url"])
        assert done["status"] == "succeeded"

        hit = submit(http, stack.api_b, url=url, quality=70, format="jpeg")
        assert hit.status_code == 200
        accepted = hit.json()
        assert accepted["status"] == "succeeded" and accepted["cached"] is True
        record = http.get(accepted["status_url"]).json()
        assert record["cached"] is True and record["result"]["sha256"] == done["result"]["sha256"]
        assert http.get(record["result"]["url"]).content  # the stored picture, downloadable
        assert len(stack.snap.bodies) == 1

        # Other options, cache_ttl 0 and fresh: true all capture anew.
        assert submit(http, stack.api_a, url=url, format="jpeg", quality=71).status_code == 202
        assert submit(http, stack.api_a, url=url, format="jpeg", quality=70,
                      cache_ttl=0).status_code == 202
        fresh = submit(http, stack.api_a, url=url, format="jpeg", quality=70, fresh=True)
        assert fresh.status_code == 202
        wait_for_job(http, fresh.json()["status_url"])
    # Another customer never gets this customer's capture.
    with client_for(stack.key()) as other:
        assert submit(other, stack.api_a, url=url, format="jpeg", quality=70).status_code == 202
    deadline = time.monotonic() + 20
    while len(stack.snap.bodies) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stack.snap.bodies) == 5


def test_identical_concurrent_requests_share_one_capture(stack: Stack) -> None:
    key = stack.key()
    stack.snap.delay = 1.5
    url = unique_url()

    def post(_: int) -> dict[str, Any]:
        with client_for(key) as http:
            answer: dict[str, Any] = submit(http, stack.api_a if _ % 2 else stack.api_b,
                                            url=url).json()
            return answer

    with ThreadPoolExecutor(6) as pool:
        accepted = list(pool.map(post, range(6)))
    assert len({a["id"] for a in accepted}) == 6  # each request has its own job
    with client_for(key) as http:
        records = [wait_for_job(http, a["status_url"]) for a in accepted]
    assert all(r["status"] == "succeeded" for r in records)
    assert len({r["result"]["sha256"] for r in records}) == 1
    assert sum(1 for r in records if not r["cached"]) == 1
    assert len(stack.snap.bodies) == 1


def test_followers_fail_with_the_shared_capture(stack: Stack) -> None:
    key = stack.key()
    stack.snap.script([(403, {}, b'{"statusCode":403,"error":"Forbidden","message":"nope"}')])
    stack.snap.delay = 1.0
    url = unique_url()
    with client_for(key) as http:
        jobs = [submit(http, stack.api_a, url=url).json() for _ in range(2)]
        records = [wait_for_job(http, j["status_url"]) for j in jobs]
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert {r["error"]["code"] for r in records} == {"engine_rejected"}
    assert len(stack.snap.bodies) == 1


# --- Synchronous captures -----------------------------------------------------------------


def test_sync_streams_the_image(stack: Stack) -> None:
    with client_for(stack.key()) as http, http.stream(
        "POST", f"{stack.api_a}/v1/screenshots/sync",
        json={"url": unique_url(), "format": "webp", "width": 400, "height": 300},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        data = b"".join(response.iter_bytes())
        assert int(response.headers["content-length"]) == len(data)
        job_id = response.headers["x-shotline-job-id"]
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP" and image.size == (400, 300)
    assert len(job_id) == 32


def test_sync_times_out_with_504_and_forwards_upstream_errors(stack: Stack) -> None:
    with client_for(stack.key()) as http:
        stack.snap.script([HANG])
        started = time.monotonic()
        late = http.post(f"{stack.api_a}/v1/screenshots/sync",
                         json={"url": unique_url(), "timeout_ms": 1000})
        assert late.status_code == 504, late.text
        assert time.monotonic() - started < 15
        body = late.json()
        assert body["error"] == "timeout" and body["details"][0]["job_id"]
        stack.snap.release()

        stack.snap.script([(402, {}, b'{"statusCode":402,"error":"Payment Required",'
                                     b'"message":"Monthly quota exceeded. Upgrade your plan."}')])
        refused = http.post(f"{stack.api_a}/v1/screenshots/sync", json={"url": unique_url()})
        assert refused.status_code == 402, refused.text
        error = refused.json()
        assert error["error"] == "engine_rejected" and "quota" in error["message"]
        assert error["details"][0]["upstream_status"] == 402 and error["request_id"]


# --- Batches ------------------------------------------------------------------------------


def test_batch_of_three(stack: Stack) -> None:
    key = stack.key()
    urls = [unique_url() for _ in range(3)]
    with client_for(key) as http:
        response = http.post(f"{stack.api_a}/v1/batches",
                             json={"urls": urls, "options": {"format": "jpeg", "width": 500}})
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["total"] == 3 and response.headers["location"] == accepted["status_url"]
        batch = wait_for_batch(http, accepted["status_url"])
    assert batch["counts"] == {"queued": 0, "running": 0, "succeeded": 3, "failed": 0}
    assert [job["url"] for job in batch["jobs"]] == urls
    assert batch["finished_at"] and all(job["status"] == "succeeded" for job in batch["jobs"])
    assert sorted(b["width"] for b in stack.snap.bodies) == [500, 500, 500]
    assert {b["format"] for b in stack.snap.bodies} == {"jpeg"}


def test_batch_refuses_bad_input_and_isolates_blocked_urls(stack: Stack) -> None:
    with client_for(stack.key()) as http:
        too_many = http.post(f"{stack.api_a}/v1/batches", json={"urls": [unique_url()] * 101})
        assert too_many.status_code == 422
        bad_option = http.post(f"{stack.api_a}/v1/batches",
                               json={"urls": [unique_url()], "options": {"width": 5}})
        assert bad_option.status_code == 422 and "width" in bad_option.json()["message"]
        mixed = http.post(f"{stack.api_a}/v1/batches",
                          json={"urls": [unique_url(), "http://10.0.0.1/"]}).json()
        batch = wait_for_batch(http, mixed["status_url"])
    assert batch["counts"]["succeeded"] == 1 and batch["counts"]["failed"] == 1
    assert batch["jobs"][1]["error"]["code"] == "url_blocked"


# --- Signed render links ------------------------------------------------------------------


def _tamper(link: str, /, **changes: str) -> str:
    parts = urlsplit(link)
    query = dict(parse_qsl(parts.query)) | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_signed_render_links(stack: Stack) -> None:
    key = stack.key()
    options = {"url": unique_url(), "width": 320, "height": 240, "full_page": False}
    link: Callable[..., str] = lambda expires, **extra: render_link(  # noqa: E731
        stack.api_a, key_id=key.record.id, secret=key.record.signing_secret, expires=expires,
        options={**options, **extra})
    valid = link(int(time.time()) + 600)
    with httpx.Client(timeout=30) as http:  # no API key: the signature is the credential
        first = http.get(valid)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(first.content)) as image:
            assert image.size == (320, 240)
        again = http.get(valid)  # fresh in the cache: no second capture
        assert again.status_code == 200 and again.content == first.content
        assert again.headers["x-shotline-cached"] == "true"
        assert len(stack.snap.bodies) == 1

        refused = [
            _tamper(valid, width="640"),
            _tamper(valid, url=unique_url()),
            _tamper(valid, signature="0" * 64),
            _tamper(valid, key_id=stack.key().record.id),
            link(int(time.time()) - 1),
            valid.replace("signature=", "sig="),
        ]
        for url in refused:
            response = http.get(url)
            assert response.status_code == 403, url
            assert response.json()["error"] == "invalid_signature"
        invalid = http.get(link(int(time.time()) + 600, width=5))
        assert invalid.status_code == 422 and invalid.json()["details"][0]["field"] == "width"

        run_cli(stack.env, "keys", "revoke", key.record.id)
        assert http.get(valid).status_code == 403
    assert len(stack.snap.bodies) == 1

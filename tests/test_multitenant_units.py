"""The pure pieces of the multi-tenant edge: key format, cache keys, render-link signatures,
idempotency fingerprints, batch bodies. No processes; the stores run on the real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import ValidationError

from api.idempotency import fingerprint
from shared.apikeys import KeyStore, hash_key, parse_key_id
from shared.batches import Batch, BatchRequest, BatchStore, new_batch_id
from shared.completion import Completion
from shared.connections import create_redis
from shared.errors import AuthenticationFailed, InvalidSignature
from shared.jobs import (
    CaptureOptions,
    Job,
    JobError,
    JobStatus,
    ScreenshotRequest,
    StoredResult,
    new_job_id,
    utcnow,
)
from shared.result_cache import ResultCache, options_digest
from shared.signing import canonical_render_query, render_link, sign_render, verify_render
from shared.status_store import StatusStore


def test_key_format_and_hash() -> None:
    key = "sl_0123456789abcdef_" + "A" * 43
    assert parse_key_id(key) == "0123456789abcdef"
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    for bad in ("", "sl_0123_x", key + "x", key.replace("sl_", "sk_"), "sl_0123456789ABCDEF_" + "A" * 43):
        assert parse_key_id(bad) is None


def test_key_store_round_trip(redis_url: str) -> None:
    async def run() -> None:
        redis = create_redis(redis_url)
        try:
            store = KeyStore(redis)
            assert not await store.any_exist()
            new = await store.create("acme", rate_limit="5/second", monthly_quota=10)
            assert (await store.authenticate(new.key)).id == new.record.id
            assert new.record.webhook_secret.startswith("whsec_")
            assert new.record.signing_secret != new.record.webhook_secret
            forged = new.key[:-1] + ("B" if new.key[-1] != "B" else "C")
            with pytest.raises(AuthenticationFailed):
                await store.authenticate(forged)
            await store.revoke(new.record.id)
            with pytest.raises(AuthenticationFailed, match="revoked"):
                await store.authenticate(new.key)
            assert await store.any_exist()  # revoking every key does not reopen the API
            listed = await store.list_keys()
            assert [k.monthly_quota for k in listed] == [10] and listed[0].revoked_at
            assert (await store.ensure(new.key, "again")).id == new.record.id
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_cache_key_ignores_delivery_fields_and_spelling() -> None:
    base = ScreenshotRequest(url="https://Example.com", width=800)
    same = ScreenshotRequest.model_validate(
        {"width": 800, "url": "https://example.com/", "cache_ttl": 5, "fresh": True, "format": "png"}
    )
    assert options_digest(base.capture_options()) == options_digest(same.capture_options())
    other = ScreenshotRequest(url="https://example.com", width=801)
    assert options_digest(base.capture_options()) != options_digest(other.capture_options())


def test_render_signature_covers_every_parameter() -> None:
    secret = "slsign_test"
    url = render_link("http://h", key_id="0123456789abcdef", secret=secret,
                      expires=int(time.time()) + 60,
                      options={"url": "https://example.com/?a=1&b=2", "full_page": True})
    params = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    verify_render(secret, params)
    assert ("full_page", "true") in params
    assert canonical_render_query([("b", "2"), ("a", "x y&z")]) == "a=x%20y%26z&b=2"
    for index in range(len(params) - 1):  # change any signed value: refused
        name, value = params[index]
        tampered = [*params[:index], (name, value + "0"), *params[index + 1:]]
        with pytest.raises(InvalidSignature):
            verify_render(secret, tampered)
    with pytest.raises(InvalidSignature):
        verify_render(secret, [*params, ("width", "300")])  # an added parameter
    with pytest.raises(InvalidSignature):
        verify_render("slsign_other", params)
    expired = [(n, v) for n, v in params if n not in ("expires", "signature")] + [("expires", "1")]
    with pytest.raises(InvalidSignature, match="expired"):
        verify_render(secret, [*expired, ("signature", sign_render(secret, expired))])


def test_idempotency_fingerprint_compares_json_by_content() -> None:
    a = fingerprint("POST", "/v1/screenshots", b'{"url": "https://e.com", "width": 800}')
    b = fingerprint("POST", "/v1/screenshots", b'{"width":800,"url":"https://e.com"}')
    assert a == b
    assert a != fingerprint("POST", "/v1/screenshots/sync", b'{"width":800,"url":"https://e.com"}')
    assert a != fingerprint("POST", "/v1/screenshots", b'{"width":801,"url":"https://e.com"}')


def test_batch_request_validates_shared_options() -> None:
    batch = BatchRequest(urls=["https://a.example", "https://b.example"],
                         options={"format": "jpeg", "quality": 50})
    assert [r.quality for r in batch.requests()] == [50, 50]
    for options in ({"url": "https://x.example"}, {"quality": 50}, {"colour": "red"},
                    {"webhook_url": "https://hook.example"}):
        with pytest.raises(ValidationError):
            BatchRequest(urls=["https://a.example"], options=options)
    with pytest.raises(ValidationError):
        BatchRequest(urls=[])


def test_completion_settles_followers_and_batches_once(redis_url: str) -> None:
    """A leader's outcome reaches the jobs that joined it, each job reaches the hooks once,
    and the batch hook fires once when the batch's last job ends."""

    async def run() -> None:
        redis = create_redis(redis_url)
        store = StatusStore(redis, ttl_seconds=600)
        cache = ResultCache(redis, store, index_ttl_seconds=600)
        batches = BatchStore(redis, ttl_seconds=600)
        seen_jobs: list[str] = []
        seen_batches: list[str] = []

        async def job_hook(job: Job) -> None:
            seen_jobs.append(job.id)

        async def batch_hook(batch: Batch) -> None:
            seen_batches.append(batch.id)

        completion = Completion(store, cache, batches, job_hooks=[job_hook],
                                batch_hooks=[batch_hook])
        try:
            options = CaptureOptions(url="https://example.com")
            digest = options_digest(options)
            ids = [new_job_id() for _ in range(3)]
            batch = Batch(id=new_batch_id(), created_at=utcnow(), job_ids=ids[:2],
                          urls=[options.url] * 2)
            await batches.create(batch)
            for job_id, batch_id in zip(ids, [batch.id, batch.id, None], strict=True):
                await store.create(Job(id=job_id, status=JobStatus.queued, created_at=utcnow(),
                                       options=options, batch_id=batch_id))
            assert await cache.lead_or_join("anon", digest, ids[0]) is None
            assert await cache.lead_or_join("anon", digest, ids[1]) == ids[0]
            assert await cache.lead_or_join("anon", digest, ids[2]) == ids[0]
            follower = await store.get(ids[2])
            assert follower.cached and follower.capture_of == ids[0]

            result = StoredResult(key="results/x.png", content_type="image/png", bytes=3,
                                  sha256="0" * 64)
            leader = await store.mark_succeeded(ids[0], result)
            assert leader is not None
            await completion.job_finished(leader)
            for job_id in ids:
                job = await store.get(job_id)
                assert job.status is JobStatus.succeeded and job.result == result
            assert sorted(seen_jobs) == sorted(ids)
            assert seen_batches == [batch.id]
            assert (await batches.get(batch.id)).finished_at is not None
            hit = await cache.lookup("anon", digest, max_age=60)
            assert hit is not None and hit.id == ids[0]
            assert await cache.lookup("anon", digest, max_age=-1) is None
            assert await cache.lookup("someone-else", digest, max_age=60) is None

            # The leader is done: an identical request now leads a capture of its own.
            late = new_job_id()
            await store.create(Job(id=late, status=JobStatus.queued, created_at=utcnow(),
                                   options=options))
            assert await cache.lead_or_join("anon", digest, late) is None
            await completion.job_finished(leader)  # a repeated call finds no followers
            assert len(seen_jobs) == 4 and seen_batches == [batch.id]
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_follower_is_repaired_on_read_when_its_leader_ended_alone(redis_url: str) -> None:
    async def run() -> None:
        redis = create_redis(redis_url)
        store = StatusStore(redis, ttl_seconds=600)
        cache = ResultCache(redis, store, index_ttl_seconds=600)
        completion = Completion(store, cache, BatchStore(redis, ttl_seconds=600))
        try:
            options = CaptureOptions(url="https://example.com")
            leader_id, follower_id = new_job_id(), new_job_id()
            for job_id in (leader_id, follower_id):
                await store.create(Job(id=job_id, status=JobStatus.queued, created_at=utcnow(),
                                       options=options))
            await cache.lead_or_join("anon", options_digest(options), leader_id)
            await cache.lead_or_join("anon", options_digest(options), follower_id)
            # The leader fails, and its worker dies before telling the followers.
            await store.mark_failed(leader_id, JobError(code="timeout", message="too slow"))
            repaired = await completion.repair(await store.get(follower_id))
            assert repaired.status is JobStatus.failed and repaired.error is not None
            assert repaired.error.code == "timeout"
        finally:
            await redis.aclose()

    asyncio.run(run())

"""Standard Webhooks signing, checked against an implementation no one here wrote
(``standardwebhooks`` from PyPI); secrets and their rotation; the retry rules."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import redis as sync_redis
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as LibraryVerificationError

from shared.backoff import parse_retry_after
from shared.connections import create_redis
from shared.constants import API_KEY_PREFIX
from shared.errors import WebhookVerificationError
from shared.settings import Settings
from shared.webhooks.retry import Verdict, next_delay, verdict_for
from shared.webhooks.secrets import SecretSet, WebhookSecrets
from shared.webhooks.signing import parse_secret, signature_headers
from shotline.webhooks import generate_secret, sign, verify

BODY = json.dumps({"type": "job.succeeded", "data": {"id": "abc", "note": "ünïcode ✓"}},
                  ensure_ascii=False).encode()


def test_generated_secrets_follow_the_spec() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_secret() != secret
    with pytest.raises(ValueError):
        generate_secret(8)


def test_the_library_verifies_what_we_sign() -> None:
    secret = generate_secret()
    now = int(time.time())
    headers = signature_headers("msg_1_job_succeeded", now, BODY, [parse_secret(secret)])
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(LibraryVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)
    with pytest.raises(LibraryVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)


def test_we_verify_what_the_library_signs() -> None:
    secret = generate_secret()
    now = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_x", now, BODY.decode())
    headers = {"Webhook-Id": "msg_x", "Webhook-Timestamp": str(int(now.timestamp())),
               "Webhook-Signature": signature}
    assert verify(BODY, headers, secret) == json.loads(BODY)
    assert verify(BODY.decode(), headers, secret.removeprefix("whsec_"))["type"] == "job.succeeded"


def test_rotation_sends_one_signature_per_secret_and_both_verify() -> None:
    old, new = generate_secret(), generate_secret()
    now = int(time.time())
    headers = signature_headers("msg_r", now, BODY, [parse_secret(new), parse_secret(old)])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
        assert verify(BODY, headers, secret)["data"]["id"] == "abc"
    with pytest.raises(LibraryVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-id": "msg_other"}, "no signature matches"),
        ({"webhook-timestamp": "{now-600}"}, "tolerance"),
        ({"webhook-timestamp": "{now+600}"}, "tolerance"),
        ({"webhook-timestamp": "12.5"}, "Unix time"),
        ({"webhook-signature": "v2,AAAA"}, "no signature matches"),
        ({"webhook-signature": "v1,not base64!"}, "no signature matches"),
        ({"webhook-signature": ""}, "missing"),
    ],
)
def test_verify_refuses_tampering(change: dict[str, str], reason: str) -> None:
    secret = generate_secret()
    now = int(time.time())
    headers = signature_headers("msg_t", now, BODY, [parse_secret(secret)])
    # Timestamps are relative to when the test runs, not to when it was collected.
    relative = {"{now-600}": str(now - 600), "{now+600}": str(now + 600)}
    headers.update({name: relative.get(value, value) for name, value in change.items()})
    with pytest.raises(WebhookVerificationError, match=reason):
        verify(BODY, headers, secret)


def test_signature_covers_id_timestamp_and_exact_body() -> None:
    key = b"k" * 32
    assert sign("a", 1, b"x", [key]) != sign("a", 2, b"x", [key])
    assert sign("a", 1, b"x", [key]) != sign("b", 1, b"x", [key])
    assert sign("a", 1, b"x", [key]) != sign("a", 1, b"x ", [key])
    with pytest.raises(ValueError):
        sign("a", 1, b"x", [])


def test_settings_refuse_malformed_secrets() -> None:
    good = generate_secret()
    assert Settings(_env_file=None, webhook_secret=good).webhook_secret is not None
    for bad in ("not-a-secret", "whsec_%%%", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="webhook secret"):
            Settings(_env_file=None, webhook_secret=bad)


def test_secret_set_drops_the_previous_secret_when_it_expires() -> None:
    old, new = generate_secret(), generate_secret()
    rotation = SecretSet(new, old, previous_expires_at=1000.0)
    assert rotation.keys(now=999.0) == [parse_secret(new), parse_secret(old)]
    assert rotation.keys(now=1000.0) == [parse_secret(new)]
    assert SecretSet(new, old).keys(now=1e12) == [parse_secret(new), parse_secret(old)]
    assert SecretSet(None).keys(now=0) == []
    assert SecretSet("garbage").keys(now=0) == []


def test_settings_rotation_window(tmp_path: object) -> None:
    old, new = generate_secret(), generate_secret()
    settings = Settings(_env_file=None, webhook_secret=new, webhook_previous_secret=old,
                        webhook_previous_secret_expires_at="2030-01-01T00:00:00Z")
    secrets = WebhookSecrets.from_settings(settings, create_redis("redis://127.0.0.1:1/0"))
    assert secrets.server.previous_expires_at == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert secrets.server.keys(now=0) == [parse_secret(new), parse_secret(old)]


def test_api_key_records_give_their_own_secrets(redis_url: str) -> None:
    old, new, server = generate_secret(), generate_secret(), generate_secret()
    client = sync_redis.Redis.from_url(redis_url)
    client.hset(f"{API_KEY_PREFIX}key1", mapping={"webhook_secret": new})
    client.hset(f"{API_KEY_PREFIX}key2", mapping={
        "webhook_secret": new, "previous_webhook_secret": old,
        "previous_webhook_secret_expires_at": str(time.time() + 60)})
    client.hset(f"{API_KEY_PREFIX}key3", mapping={
        "webhook_secret": new, "previous_webhook_secret": old,
        "previous_webhook_secret_expires_at": str(time.time() - 1)})
    client.close()

    async def lookups() -> list[list[bytes]]:
        redis = create_redis(redis_url)
        try:
            secrets = WebhookSecrets(redis, SecretSet(server))
            return [await secrets.signing_keys(owner)
                    for owner in (None, "key1", "key2", "key3", "unknown")]
        finally:
            await redis.aclose()

    single, one, rotating, expired, unknown = asyncio.run(lookups())
    assert single == [parse_secret(server)]
    assert one == [parse_secret(new)]
    assert rotating == [parse_secret(new), parse_secret(old)]
    assert expired == [parse_secret(new)]
    assert unknown == []


def test_verdicts() -> None:
    assert [verdict_for(s) for s in (200, 204, 299)] == [Verdict.delivered] * 3
    assert verdict_for(410) is Verdict.disabled
    assert [verdict_for(s) for s in (None, 301, 302, 400, 404, 429, 500, 503)] == [Verdict.retry] * 8


def test_retry_after_is_parsed_and_capped() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after(format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True),
                             now=now) == pytest.approx(30)
    assert parse_retry_after("999999999", now=now) == 24 * 3600
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_schedule_with_jitter_and_retry_after() -> None:
    rng = random.Random(1)
    schedule = (5, 300, 1800)
    delays = [next_delay(n, schedule, rng=rng) for n in (1, 2, 3)]
    for delay, base in zip(delays, schedule, strict=True):
        assert delay is not None and base * 0.8 <= delay <= base * 1.2
    assert next_delay(4, schedule) is None
    assert next_delay(1, ()) is None
    # Retry-After is honoured for 429/502/503/504 only, and never shortens the schedule.
    assert next_delay(1, schedule, status=503, retry_after=120, rng=rng) == 120
    later = next_delay(2, schedule, status=429, retry_after=1, rng=rng)
    assert later is not None and later >= 240
    plain = next_delay(1, schedule, status=500, retry_after=120, rng=rng)
    assert plain is not None and plain <= 6


def test_the_readme_receiver_works() -> None:
    """The receiver example in the README, run as written, accepts a signed delivery and
    refuses a tampered one."""
    from pathlib import Path

    import httpx

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = next(block for block in readme.split("```python\n")[1:] if "verify(" in block)
    secret = generate_secret()
    namespace: dict[str, object] = {}
    exec(example.split("```")[0].replace('"whsec_..."', repr(secret)), namespace)
    body = json.dumps({"type": "job.succeeded", "timestamp": "2030-01-01T00:00:00Z",
                       "data": {"id": "abc", "result": {"url": "http://files/x.png"}}}).encode()
    headers = signature_headers("msg_readme", int(time.time()), body, [parse_secret(secret)])

    async def post(body: bytes) -> int:
        transport = httpx.ASGITransport(app=namespace["app"])  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return (await client.post("/shotline", content=body, headers=headers)).status_code

    assert asyncio.run(post(body)) == 200
    assert asyncio.run(post(body + b" ")) == 400

"""The Redis round trips of an API request: its rate limit and its ``Idempotency-Key``
lookup travel together. The app runs in-process on a real Redis; the round trips are the
writes redis-py makes (a pipeline is one), recorded as they are sent, never timed."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio.connection

from api.app import create_app
from shared.apikeys import KeyStore
from shared.connections import create_redis
from shared.constants import IDEMPOTENCY_PREFIX, RATE_LIMIT_PREFIX
from shared.settings import Settings

#: A page on a loopback address: the tests' URL policy lets it through, and no worker runs.
BODY = {"url": "http://127.0.0.2:8080/index.html", "width": 640, "height": 480}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every write the process's asyncio Redis connections make, as the bytes sent."""
    writes: list[bytes] = []
    connection = redis.asyncio.connection.AbstractConnection
    original = connection.send_packed_command

    async def record(self: Any, command: bytes | str | Iterable[bytes],
                     check_health: bool = True) -> None:
        if isinstance(command, str):
            writes.append(command.encode())
        else:
            writes.append(command if isinstance(command, bytes) else b"".join(command))
        await original(self, command, check_health)

    monkeypatch.setattr(connection, "send_packed_command", record)
    yield writes


def post_all(settings: Settings, requests: list[dict[str, Any]], sent: list[bytes]
             ) -> list[httpx.Response]:
    """POST each of ``requests`` (keyword arguments of ``httpx``) to ``/v1/screenshots``,
    after a warm-up (the server learns the scripts, the key is cached; two requests of the
    rate limit) whose writes are then forgotten."""
    app = create_app(settings)

    async def call() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                auth = {"Authorization": requests[0]["headers"]["Authorization"]}
                warm = await client.post("/v1/screenshots", json=BODY,
                                         headers={**auth, "Idempotency-Key": "warm-up"})
                await client.delete(f"/v1/jobs/{warm.json()['id']}", headers=auth)
                sent.clear()
                return [await client.post("/v1/screenshots", **request) for request in requests]

    return asyncio.run(call())


def new_key(redis_url: str) -> tuple[str, str]:
    """A new API key and its id."""

    async def create() -> tuple[str, str]:
        client = create_redis(redis_url)
        try:
            created = await KeyStore(client).create("acme")
            return created.key, created.record.id
        finally:
            await client.aclose()

    return asyncio.run(create())


def carrying(writes: list[bytes], needle: str) -> list[bytes]:
    return [write for write in writes if needle.encode() in write]


def test_the_rate_limit_and_the_idempotency_lookup_are_one_round_trip(
    make_settings: Callable[..., Settings], redis_url: str, sent: list[bytes]
) -> None:
    settings = make_settings(rate_limit="100/minute")
    key, _ = new_key(redis_url)
    auth = {"Authorization": f"Bearer {key}"}
    first, again, plain = post_all(settings, [
        {"json": BODY, "headers": {**auth, "Idempotency-Key": "order-1"}},
        {"json": BODY, "headers": {**auth, "Idempotency-Key": "order-1"}},
        {"json": BODY, "headers": auth},
    ], sent)
    assert first.status_code == again.status_code == plain.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # Each request counted once, the replay included (after the warm-up's two).
    assert [int(r.headers["x-ratelimit-remaining"]) for r in (first, again, plain)] == [97, 96, 95]
    limited = carrying(sent, RATE_LIMIT_PREFIX)
    assert len(limited) == 3  # one round trip per request for the rate limit...
    lookups = carrying(sent, IDEMPOTENCY_PREFIX)
    # ...which also carries the lookup of the key (taken, then replayed); the first
    # request's answer is stored later, on its own.
    assert sum(1 for write in limited if IDEMPOTENCY_PREFIX.encode() in write) == 2
    assert len(lookups) == 3
    for write in limited:
        assert write.count(b"EVALSHA") == (3 if IDEMPOTENCY_PREFIX.encode() in write else 2)


def test_a_rate_limited_request_releases_the_idempotency_key_it_took(
    make_settings: Callable[..., Settings], redis_url: str, sent: list[bytes]
) -> None:
    settings = make_settings(rate_limit="3/minute")
    key, key_id = new_key(redis_url)
    auth = {"Authorization": f"Bearer {key}"}
    accepted, refused = post_all(settings, [
        {"json": BODY, "headers": auth},
        {"json": BODY, "headers": {**auth, "Idempotency-Key": "order-2"}},
    ], sent)
    assert (accepted.status_code, refused.status_code) == (202, 429)
    assert refused.json()["error"] == "rate_limited"
    # The refused request took the key with its rate limit (one round trip) and gave it
    # back: a retry once the window has room runs anew instead of answering 409.
    client = redis.Redis.from_url(redis_url)
    try:
        record = f"{IDEMPOTENCY_PREFIX}{key_id}:{hashlib.sha256(b'order-2').hexdigest()}"
        assert not client.exists(record)
    finally:
        client.close()
    taken, released = carrying(sent, record)
    assert RATE_LIMIT_PREFIX.encode() in taken and b"release" in released

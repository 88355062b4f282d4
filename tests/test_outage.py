"""Riding out a Redis outage when an attempt has its outcome (worker.outage), against a real
redis-server stopped and started again; the end-to-end case is tests/test_redis_blip.py."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from shared.connections import create_redis
from shared.errors import StoreUnavailable
from shared.status_store import redis_errors
from tests.servers import free_port, run_redis
from worker.outage import through_outage


def test_a_write_waits_for_redis_to_answer_again(tmp_path: Path) -> None:
    port = free_port()
    first = run_redis(tmp_path / "redis", port=port, appendonly=True)
    second = run_redis(tmp_path / "redis", port=port, appendonly=True)
    first.__enter__()
    back = threading.Timer(1.0, second.__enter__)  # Redis answers again a second later

    async def scenario() -> bytes | str | None:
        redis = create_redis(f"redis://127.0.0.1:{port}/0")
        try:
            await redis.set("outcome", "pending")
            first.__exit__(None, None, None)  # SIGTERM: Redis writes its AOF and exits
            back.start()

            async def write() -> bytes | str | None:
                with redis_errors():
                    await redis.set("outcome", "succeeded")
                    value: bytes | str | None = await redis.get("outcome")
                    return value

            return await through_outage(write, what="test", within=30)
        finally:
            await redis.aclose()

    try:
        assert asyncio.run(scenario()) == b"succeeded"
    finally:
        back.join()
        second.__exit__(None, None, None)


def test_past_its_bound_the_outage_is_raised() -> None:
    tries = 0

    async def write() -> None:
        nonlocal tries
        tries += 1
        raise StoreUnavailable("Redis is unreachable")

    with pytest.raises(StoreUnavailable):
        asyncio.run(through_outage(write, what="test", within=0.5))
    assert tries >= 2  # tried again before giving up

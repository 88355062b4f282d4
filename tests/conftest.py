"""Fixtures on real parts: a private redis-server, a page server, settings for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.settings import Settings
from tests.servers import PageServer, run_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server started for this test session on a free port."""
    with run_redis(tmp_path_factory.mktemp("redis")) as (_process, port):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    yield redis_server


@pytest.fixture(scope="session")
def page_server() -> Iterator[PageServer]:
    """The test pages (tests/pages) served on 127.0.0.1."""
    with PageServer() as server:
        yield server


@pytest.fixture
def shotline_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """SHOTLINE_* settings for this test, as environment variables (for child processes)."""
    return {
        "SHOTLINE_REDIS_URL": redis_url,
        "SHOTLINE_DATA_DIR": str(tmp_path / "data"),
        "SHOTLINE_ALLOWED_NETWORKS": "127.0.0.0/8",
        "SHOTLINE_SECRET_KEY": "test-signing-secret",
        "SHOTLINE_LOG_FORMAT": "console",
        "SHOTLINE_WORKER_CONCURRENCY": "1",
    }


@pytest.fixture
def make_settings(shotline_env: dict[str, str]) -> Callable[..., Settings]:
    """Factory: this test's settings, with keyword overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            key.removeprefix("SHOTLINE_").lower(): value for key, value in shotline_env.items()
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """This test's settings with no overrides."""
    return make_settings()

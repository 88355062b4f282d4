"""The module-scoped Redis DBs are handed out in turn: more modules than Redis has DBs can
each have one (the allocator once ran out at the 16th module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import conftest


def test_module_dbs_are_given_back_and_reused(redis_server: str,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    fixture = conftest.module_env.__wrapped__  # type: ignore[attr-defined]
    free_before = sorted(conftest._free_module_dbs)
    used: set[str] = set()
    for _ in range(40):  # far more modules than the 15 DBs
        allocation: Iterator[dict[str, str]] = fixture(redis_server, tmp_path_factory)
        env = next(allocation)
        used.add(env["SHOTLINE_REDIS_URL"])
        with pytest.raises(StopIteration):
            next(allocation)
    assert sorted(conftest._free_module_dbs) == free_before
    assert len(used) > 1

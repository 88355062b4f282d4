"""A full disk: local storage says "storage full" without the server's paths. Runs on a
real, tiny tmpfs (the test suite runs as root, as `make install` does)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import StorageError
from shared.storage.local import LocalStorage


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "tiny"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)],
                             capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, f"this test mounts a tmpfs (needs root): {mounted.stderr}"
    try:
        yield root
    finally:
        subprocess.run(["umount", str(root)], check=False)


def test_a_full_disk_is_storage_full_without_internals(full_disk: Path) -> None:
    storage = LocalStorage(full_disk, "http://127.0.0.1:8000", b"k" * 32)
    asyncio.run(storage.put("results/small.png", b"x" * 1000, content_type="image/png"))
    with pytest.raises(StorageError) as caught:
        asyncio.run(storage.put("results/big.png", b"x" * 200_000, content_type="image/png"))
    assert caught.value.message == "storage full: the result could not be written"
    assert str(full_disk) not in caught.value.message
    assert not [p for p in (full_disk / "results").iterdir() if p.name.endswith(".tmp")]

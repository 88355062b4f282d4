"""What every storage backend provides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SignedUrl:
    """A time-limited download URL."""

    url: str
    expires_at: datetime


class Storage(Protocol):
    """Where capture results live. Keys are relative paths such as ``results/<job>.png``."""

    name: str

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data`` under ``key`` (overwriting: a redelivered job writes the same key)."""
        ...

    def signed_url(self, key: str, *, expires_in: int) -> SignedUrl:
        """A download URL for ``key`` valid for ``expires_in`` seconds (no I/O)."""
        ...

    def stream(self, key: str, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; raises :class:`shared.errors.StorageError` if missing."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing an object that does not exist is not an error."""
        ...

    async def list_keys(self, prefix: str) -> list[str]:
        """Keys of every stored object whose key starts with ``prefix``."""
        ...

    async def check(self) -> None:
        """Raise :class:`shared.errors.StorageError` unless the backend is reachable."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections."""
        ...

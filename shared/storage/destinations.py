"""Where a result lives: the default storage or an API key's own bucket.

:class:`StorageRouter` is a :class:`~shared.storage.base.Storage` (the default one, for
everything that does not care) that also finds the storage of a given result record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from shared.settings import Settings
from shared.storage import make_storage
from shared.storage.base import SignedUrl, Storage


class StorageRouter:
    """The default storage, plus the storages that results name as their destination."""

    def __init__(self, default: Storage) -> None:
        self.default = default
        self.name = default.name

    def for_destination(self, destination: Mapping[str, Any] | None) -> Storage:
        """The storage a result record's ``destination`` names (None: the default)."""
        return self.default

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store in the default storage."""
        await self.default.put(key, data, content_type=content_type)

    def signed_url(self, key: str, *, expires_in: int) -> SignedUrl:
        """A download URL of the default storage."""
        return self.default.signed_url(key, expires_in=expires_in)

    def stream(self, key: str, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """Read from the default storage."""
        return self.default.stream(key, chunk_size=chunk_size)

    async def delete(self, key: str) -> None:
        """Delete from the default storage."""
        await self.default.delete(key)

    async def list_keys(self, prefix: str) -> list[str]:
        """List the default storage."""
        return await self.default.list_keys(prefix)

    async def check(self) -> None:
        """Check the default storage (customers' buckets are checked when used)."""
        await self.default.check()

    async def aclose(self) -> None:
        """Close every storage opened."""
        await self.default.aclose()


def make_storage_router(settings: Settings) -> StorageRouter:
    """The router of ``settings``: their default storage and the customers' buckets."""
    return StorageRouter(make_storage(settings))


def storage_for(storage: Storage, destination: Mapping[str, Any] | None) -> Storage:
    """The storage holding a result with ``destination``: ``storage`` itself unless it is a
    :class:`StorageRouter`."""
    if isinstance(storage, StorageRouter):
        return storage.for_destination(destination)
    return storage


def router_of(storage: Storage) -> StorageRouter:
    """``storage`` as a router (itself when it is one)."""
    return storage if isinstance(storage, StorageRouter) else StorageRouter(storage)


def default_storage(storage: Storage) -> Storage:
    """The default storage behind ``storage`` (itself unless it is a router)."""
    return storage.default if isinstance(storage, StorageRouter) else storage

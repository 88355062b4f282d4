"""Streaming stored files out of the API without buffering them."""

from __future__ import annotations

from collections.abc import AsyncIterator

from shared.errors import JobNotFound, StorageError
from shared.storage.base import Storage


async def open_stream(storage: Storage, key: str, *, missing: str) -> AsyncIterator[bytes]:
    """``key``'s chunks, with the first already read: a missing file raises
    :class:`JobNotFound` (``missing`` as its message) before any response starts."""
    chunks = storage.stream(key)
    try:
        first = await anext(chunks, b"")
    except StorageError as exc:
        raise JobNotFound(missing) from exc

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return body()

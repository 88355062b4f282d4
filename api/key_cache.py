"""API key lookups kept in the API process for a few seconds.

Every authenticated request needs its key's record (and, without a key, whether any key
exists). Read from Redis each time, that is a round trip per request for an answer that
almost never changes. :class:`CachedKeyStore` keeps each answer for ``ttl_seconds``
(``SHOTLINE_API_KEY_CACHE_SECONDS``, default 5):

- a revoked key keeps working in an API process for at most that long after
  ``shotline keys revoke`` (the bound holds in every process, whichever revoked it: no
  process hears of a revocation, each one only re-reads a record older than the bound);
  a changed rate limit or quota of a key applies within the same bound;
- failures are never kept: a new key works at once, and an unknown or revoked one is
  refused by Redis' answer of the moment;
- "some key exists" is kept for good once true (keys are never deleted, so revoking every
  key does not reopen the API); "no key yet" is kept for ``ttl_seconds``.

The records are keyed by the SHA-256 of the key, never the key itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from shared.apikeys import ApiKey, KeyStore, hash_key

#: Most records kept; past it, expired ones are dropped, then everything if still full.
MAX_CACHED_KEYS = 10_000


class CachedKeyStore(KeyStore):
    """A :class:`KeyStore` whose ``authenticate`` and ``any_exist`` answers are kept for
    ``ttl_seconds`` (0: not kept at all)."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(redis)
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._records: dict[str, tuple[float, ApiKey]] = {}
        self._some_exist = False
        self._none_until = 0.0

    async def authenticate(self, key: str) -> ApiKey:
        """The active record ``key`` belongs to, as Redis said at most ``ttl_seconds`` ago;
        :class:`~shared.errors.AuthenticationFailed` otherwise (never from the cache)."""
        if self.ttl_seconds <= 0:
            return await super().authenticate(key)
        digest = hash_key(key)
        now = self._clock()
        kept = self._records.get(digest)
        if kept is not None and kept[0] > now:
            return kept[1]
        record = await super().authenticate(key)
        self._keep(digest, record, now)
        return record

    def _keep(self, digest: str, record: ApiKey, now: float) -> None:
        if len(self._records) >= MAX_CACHED_KEYS:
            self._records = {d: kept for d, kept in self._records.items() if kept[0] > now}
            if len(self._records) >= MAX_CACHED_KEYS:
                self._records.clear()
        self._records[digest] = (now + self.ttl_seconds, record)

    async def any_exist(self) -> bool:
        """Whether any key was ever created: true for good once seen true."""
        if self._some_exist:
            return True
        if self.ttl_seconds > 0 and self._clock() < self._none_until:
            return False
        self._some_exist = await super().any_exist()
        if not self._some_exist:
            self._none_until = self._clock() + self.ttl_seconds
        return self._some_exist

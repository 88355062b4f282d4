"""API keys: created once, shown once, stored hashed in Redis.

A key reads ``sl_<id>_<secret>``: ``id`` (16 hex digits) names its record, ``secret`` is 32
random bytes (URL-safe base64). Redis keeps only the SHA-256 of the whole key. The key has
256 bits of entropy, so a fast hash is as good as a slow one here (nothing to brute-force),
and no server-side pepper is needed that every API host and the CLI would have to share.

Each record also holds the key's two server-side secrets, shown once at creation:
``webhook_secret`` (``whsec_…``, signs webhooks to the key's endpoints) and
``signing_secret`` (signs ``/v1/render`` links, so a capture URL can sit in an ``<img>``
without exposing the key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from shared.constants import API_KEY_HASH_PREFIX, API_KEY_IDS, API_KEY_PREFIX
from shared.errors import ApiKeyNotFound, AuthenticationFailed
from shared.status_store import redis_errors

KEY_PREFIX = "sl_"
_KEY_PATTERN = re.compile(r"^sl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")


class ApiKey(BaseModel):
    """An API key's record as kept in Redis (never the key itself)."""

    id: str
    name: str
    key_hash: str
    created_at: float = Field(description="Unix time.")
    revoked_at: float | None = None
    rate_limit: str | None = Field(default=None, description="Overrides SHOTLINE_RATE_LIMIT.")
    monthly_quota: int | None = Field(default=None, description="Overrides SHOTLINE_MONTHLY_QUOTA.")
    webhook_secret: str
    previous_webhook_secret: str | None = None
    previous_webhook_secret_expires_at: float | None = None
    signing_secret: str
    retention_seconds: int | None = Field(
        default=None, description="Overrides SHOTLINE_RESULT_RETENTION_SECONDS."
    )
    storage_destination: str | None = Field(
        default=None, description="JSON of the key's own bucket (shared.storage.destinations),"
        " its credentials encrypted.",
    )

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: its record plus the plain key, which exists only here."""

    record: ApiKey
    key: str


def hash_key(key: str) -> str:
    """The hex SHA-256 stored in place of ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_signing_secret() -> str:
    """A secret for signed render links: ``slsign_`` + 32 random bytes, URL-safe."""
    return "slsign_" + secrets.token_urlsafe(32)


def parse_key_id(key: str) -> str | None:
    """The id inside a well-formed key, else ``None``."""
    match = _KEY_PATTERN.match(key)
    return match.group(1) if match else None


def valid_key_id(key_id: str) -> bool:
    """Whether ``key_id`` has the shape of a key id (16 hex digits)."""
    return bool(_ID_PATTERN.match(key_id))


def generate_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def _record_key(key_id: str) -> str:
    return f"{API_KEY_PREFIX}{key_id}"


def _encode(record: ApiKey) -> dict[str, str]:
    return {name: str(value) for name, value in record.model_dump().items() if value is not None}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: Mapping[bytes | str, bytes | str]) -> ApiKey:
    return ApiKey.model_validate({_text(k): _text(v) for k, v in raw.items()})


class KeyStore:
    """API key records in Redis: create, look up, authenticate, list, revoke."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def create(
        self,
        name: str,
        *,
        key: str | None = None,
        rate_limit: str | None = None,
        monthly_quota: int | None = None,
    ) -> NewKey:
        """Create a key named ``name`` (or register the given well-formed ``key``)."""
        if key is None:
            key_id, key = generate_key()
        else:
            parsed = parse_key_id(key)
            if parsed is None:
                raise AuthenticationFailed("not a Shotline API key")
            key_id = parsed
        record = ApiKey(
            id=key_id, name=name, key_hash=hash_key(key), created_at=time.time(),
            rate_limit=rate_limit, monthly_quota=monthly_quota,
            webhook_secret=new_webhook_secret(), signing_secret=new_signing_secret(),
        )
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(_record_key(key_id), mapping=_encode(record))  # type: ignore[arg-type]
                pipe.set(f"{API_KEY_HASH_PREFIX}{record.key_hash}", key_id)
                pipe.sadd(API_KEY_IDS, key_id)
                await pipe.execute()
        return NewKey(record=record, key=key)

    async def get(self, key_id: str) -> ApiKey:
        """The record of ``key_id``; :class:`ApiKeyNotFound` when there is none."""
        if not valid_key_id(key_id):
            raise ApiKeyNotFound(f"no API key {key_id!r}")
        with redis_errors():
            raw = await self.redis.hgetall(_record_key(key_id))
        if not raw:
            raise ApiKeyNotFound(f"no API key {key_id!r}")
        return _decode(raw)

    async def authenticate(self, key: str) -> ApiKey:
        """The active record ``key`` belongs to; :class:`AuthenticationFailed` otherwise."""
        key_id = parse_key_id(key)
        if key_id is None:
            raise AuthenticationFailed("The API key is malformed.")
        try:
            record = await self.get(key_id)
        except ApiKeyNotFound:
            raise AuthenticationFailed("The API key is not valid.") from None
        if not hmac.compare_digest(record.key_hash, hash_key(key)):
            raise AuthenticationFailed("The API key is not valid.")
        if not record.active:
            raise AuthenticationFailed("The API key has been revoked.")
        return record

    async def any_exist(self) -> bool:
        """Whether any key was ever created (revoking every key does not reopen the API)."""
        with redis_errors():
            return bool(await self.redis.scard(API_KEY_IDS))

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with redis_errors():
            ids = sorted(_text(member) for member in await self.redis.smembers(API_KEY_IDS))
            async with self.redis.pipeline(transaction=False) as pipe:
                for key_id in ids:
                    pipe.hgetall(_record_key(key_id))
                raws = await pipe.execute()
        return sorted((_decode(raw) for raw in raws if raw), key=lambda r: r.created_at)

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke ``key_id`` for good (idempotent); returns its record."""
        record = await self.get(key_id)
        if record.revoked_at is None:
            with redis_errors():
                # HSETNX: a concurrent revoke keeps the first time.
                await self.redis.hsetnx(_record_key(key_id), "revoked_at", str(time.time()))
            record = await self.get(key_id)
        return record

    async def set_retention(self, key_id: str, seconds: int | None) -> ApiKey:
        """Keep ``key_id``'s new results ``seconds`` long (None: the server's default)."""
        await self.get(key_id)
        with redis_errors():
            if seconds is None:
                await self.redis.hdel(_record_key(key_id), "retention_seconds")
            else:
                await self.redis.hset(_record_key(key_id), "retention_seconds", str(seconds))
        return await self.get(key_id)

    async def set_storage(self, key_id: str, destination_json: str | None) -> ApiKey:
        """Send ``key_id``'s new results to the bucket ``destination_json`` describes (see
        :mod:`shared.storage.destinations`), or back to the default storage (None)."""
        await self.get(key_id)
        with redis_errors():
            if destination_json is None:
                await self.redis.hdel(_record_key(key_id), "storage_destination")
            else:
                await self.redis.hset(_record_key(key_id), "storage_destination", destination_json)
        return await self.get(key_id)

    async def ensure(self, key: str, name: str) -> ApiKey:
        """The record of ``key``, created when missing (the dev key survives a Redis reset)."""
        key_id = parse_key_id(key)
        if key_id is None:
            raise AuthenticationFailed("not a Shotline API key")
        try:
            record = await self.get(key_id)
        except ApiKeyNotFound:
            return (await self.create(name, key=key)).record
        if not hmac.compare_digest(record.key_hash, hash_key(key)):
            raise AuthenticationFailed(f"key id {key_id} belongs to another key")
        return record

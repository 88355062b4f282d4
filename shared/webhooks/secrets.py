"""Which secrets sign a job's webhooks: its API key's, or the server's in single-tenant mode.

A job without an owner (``api_key_id`` is ``None``) is signed with ``SHOTLINE_WEBHOOK_SECRET``
and, until ``SHOTLINE_WEBHOOK_PREVIOUS_SECRET_EXPIRES_AT``, also with
``SHOTLINE_WEBHOOK_PREVIOUS_SECRET``. A job owned by an API key is signed with the key
record's ``webhook_secret`` and, during a rotation, its ``previous_webhook_secret`` until
``previous_webhook_secret_expires_at`` (Unix seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
import structlog

from shared.constants import API_KEY_PREFIX
from shared.status_store import redis_errors
from shared.webhooks.signing import parse_secret

if TYPE_CHECKING:
    from shared.settings import Settings

log = structlog.get_logger("shotline.webhooks")

_KEY_FIELDS = ("webhook_secret", "previous_webhook_secret", "previous_webhook_secret_expires_at")


@dataclass(frozen=True, slots=True)
class SecretSet:
    """The current secret and, during a rotation, the previous one with its end."""

    current: str | None
    previous: str | None = None
    #: Unix time the previous secret stops signing; ``None``: until it is removed.
    previous_expires_at: float | None = None

    def keys(self, *, now: float) -> list[bytes]:
        """The keys that sign at ``now``, current first; malformed secrets are skipped."""
        active = [self.current]
        if self.previous and (self.previous_expires_at is None or now < self.previous_expires_at):
            active.append(self.previous)
        keys: list[bytes] = []
        for secret in active:
            if not secret:
                continue
            try:
                keys.append(parse_secret(secret, strict=True))
            except ValueError as exc:
                log.warning("ignoring a malformed webhook secret", error=str(exc))
        return keys


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text or None


class WebhookSecrets:
    """Looks up the signing keys of a job's owner."""

    def __init__(self, redis: aioredis.Redis, server: SecretSet) -> None:
        self.redis = redis
        self.server = server

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis) -> WebhookSecrets:
        """Secrets from ``WEBHOOK_SECRET`` and ``WEBHOOK_PREVIOUS_SECRET`` (+ its expiry)."""
        expires = settings.webhook_previous_secret_expires_at
        return cls(redis, SecretSet(
            current=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
            previous=(settings.webhook_previous_secret.get_secret_value()
                      if settings.webhook_previous_secret else None),
            previous_expires_at=expires.timestamp() if expires else None,
        ))

    async def secret_set(self, api_key_id: str | None) -> SecretSet:
        """The secrets of ``api_key_id`` (the server's for ``None``)."""
        if api_key_id is None:
            return self.server
        with redis_errors():
            raw = await self.redis.hmget(f"{API_KEY_PREFIX}{api_key_id}", list(_KEY_FIELDS))
        current, previous, expires = (_text(value) for value in raw)
        try:
            expires_at = float(expires) if expires else None
        except ValueError:
            expires_at = 0.0  # unreadable: treat the previous secret as expired
        return SecretSet(current, previous, expires_at)

    async def signing_keys(self, api_key_id: str | None, *, now: float | None = None) -> list[bytes]:
        """The keys signing ``api_key_id``'s webhooks now; empty when none is configured."""
        secrets = await self.secret_set(api_key_id)
        return secrets.keys(now=time.time() if now is None else now)

"""Webhook deliveries in Redis: state, attempt log, due set, locks and disabled endpoints.

Every key and due-set member is a delivery's subject: a job id or ``batch:<batch_id>``
(:mod:`shared.webhooks.subjects`).

Every change of a delivery's state and its place in the due set happens in one Lua script,
so a crash between the two cannot lose a retry. The due set is the retry schedule: an entry
whose score has passed is handed to a delivery task by :meth:`DeliveryStore.claim_due`,
which pushes the score one lease ahead; if that task is lost (worker killed, broker
restarted) the entry comes due again when the lease runs out.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from shared.constants import (
    WEBHOOK_ATTEMPTS_PREFIX,
    WEBHOOK_DISABLED_PREFIX,
    WEBHOOK_DUE_KEY,
    WEBHOOK_KEY_PREFIX,
    WEBHOOK_LOCK_PREFIX,
)
from shared.scripts import load_script
from shared.status_store import redis_errors
from shared.webhooks.models import Delivery, DeliveryAttempt, DeliveryState
from shared.webhooks.payload import EventType

#: Attempts kept per delivery (the oldest are dropped beyond this).
MAX_LOGGED_ATTEMPTS = 100


def delivery_key(subject: str) -> str:
    """Redis key of ``subject``'s delivery hash."""
    return f"{WEBHOOK_KEY_PREFIX}{subject}"


def attempts_key(subject: str) -> str:
    """Redis key of ``subject``'s attempt list."""
    return f"{WEBHOOK_ATTEMPTS_PREFIX}{subject}"


def disabled_key(owner: str | None, url: str) -> str:
    """Redis key marking the endpoint ``url`` of ``owner`` disabled."""
    digest = hashlib.sha256(f"{owner or ''}\n{url}".encode()).hexdigest()
    return f"{WEBHOOK_DISABLED_PREFIX}{digest}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: Mapping[Any, Any]) -> Delivery:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    next_at = fields.get("next_attempt_at", "")
    return Delivery(
        # Deliveries stored before batches had webhooks name their job in ``job_id``.
        subject=fields.get("subject") or fields["job_id"],
        event=EventType(fields["event"]),
        webhook_id=fields["webhook_id"],
        url=fields["url"],
        owner=fields.get("owner") or None,
        state=DeliveryState(fields["state"]),
        round=int(fields.get("round", "0")),
        failures=int(fields.get("failures", "0")),
        attempts=int(fields.get("attempts", "0")),
        next_attempt_at=float(next_at) if next_at else None,
    )


def _pairs(fields: Mapping[str, object]) -> list[str]:
    out: list[str] = []
    for name, value in fields.items():
        out += [name, "" if value is None else str(value)]
    return out


class DeliveryStore:
    """Reads and moves webhook deliveries. One instance per process."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._open = load_script(redis, __name__, "delivery_open")
        self._claim = load_script(redis, __name__, "delivery_claim")
        self._record = load_script(redis, __name__, "delivery_record")
        self._restart = load_script(redis, __name__, "delivery_restart")
        self._unlock = load_script(redis, __name__, "delivery_unlock")

    async def open(self, delivery: Delivery, *, due: float) -> bool:
        """Create ``delivery`` and put it in the due set at ``due``, unless it exists already.

        Returns whether it was created: telling about a finished job twice (a redelivered
        capture task) creates nothing the second time.
        """
        fields = {
            "subject": delivery.subject,
            "event": delivery.event.value,
            "webhook_id": delivery.webhook_id,
            "url": delivery.url,
            "owner": delivery.owner,
            "state": delivery.state.value,
            "round": delivery.round,
            "failures": delivery.failures,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at,
        }
        args = [str(self.ttl_seconds), delivery.subject, repr(due), *_pairs(fields)]
        with redis_errors():
            created = await self._open(keys=[delivery_key(delivery.subject), WEBHOOK_DUE_KEY],
                                       args=args)
        return bool(created)

    async def get(self, subject: str) -> Delivery | None:
        """The delivery of ``subject``, or ``None`` when there is none (yet)."""
        with redis_errors():
            raw = await self.redis.hgetall(delivery_key(subject))
        return _decode(raw) if raw else None

    async def attempts(self, subject: str) -> list[DeliveryAttempt]:
        """Every logged attempt of ``subject``'s delivery, oldest first."""
        with redis_errors():
            raw = await self.redis.lrange(attempts_key(subject), 0, -1)
        return [DeliveryAttempt.model_validate_json(item) for item in raw]

    async def claim_due(self, *, now: float, lease_seconds: float, limit: int = 100) -> list[str]:
        """The subjects whose attempt is due at ``now``, each leased for ``lease_seconds``.

        A claimed entry comes due again after the lease unless its attempt records an
        outcome first, so a lost task only delays the delivery.
        """
        with redis_errors():
            ids = await self._claim(keys=[WEBHOOK_DUE_KEY],
                                    args=[repr(now), repr(now + lease_seconds), limit])
        return [_text(item) for item in ids]

    async def due_at(self, subject: str) -> float | None:
        """The score of ``subject`` in the due set (``None``: not in it)."""
        with redis_errors():
            score = await self.redis.zscore(WEBHOOK_DUE_KEY, subject)
        return None if score is None else float(score)

    async def set_due(self, subject: str, *, at: float) -> None:
        """Make ``subject`` due at ``at`` if it is in the due set (a failed enqueue: try soon)."""
        with redis_errors():
            await self.redis.zadd(WEBHOOK_DUE_KEY, {subject: at}, xx=True)

    async def forget_due(self, subject: str) -> None:
        """Drop ``subject`` from the due set (its delivery is final or gone)."""
        with redis_errors():
            await self.redis.zrem(WEBHOOK_DUE_KEY, subject)

    async def record(
        self,
        delivery: Delivery,
        attempt: DeliveryAttempt,
        *,
        state: DeliveryState,
        failures: int,
        next_attempt_at: float | None,
    ) -> bool:
        """Log ``attempt`` and move ``delivery`` to ``state`` (due again at ``next_attempt_at``).

        Returns ``False`` when a redelivery started while the attempt ran: the attempt is
        logged but the redelivery's state is kept.
        """
        fields = {"state": state.value, "failures": failures, "next_attempt_at": next_attempt_at}
        args = [
            str(delivery.round), attempt.model_dump_json(), str(attempt.number),
            str(self.ttl_seconds), delivery.subject,
            "" if next_attempt_at is None else repr(next_attempt_at), str(MAX_LOGGED_ATTEMPTS),
            *_pairs(fields),
        ]
        keys = [delivery_key(delivery.subject), attempts_key(delivery.subject), WEBHOOK_DUE_KEY]
        with redis_errors():
            applied = await self._record(keys=keys, args=args)
        return int(applied) == 1

    async def restart(self, subject: str, *, now: float, due: float) -> bool:
        """Start a new round of attempts for ``subject``, due at ``due`` (a redelivery)."""
        with redis_errors():
            done = await self._restart(keys=[delivery_key(subject), WEBHOOK_DUE_KEY],
                                       args=[subject, repr(now), repr(due), str(self.ttl_seconds)])
        return bool(done)

    async def lock(self, subject: str, *, ttl_seconds: float) -> str | None:
        """Take the attempt lock of ``subject``: a token to :meth:`unlock` with, or ``None``
        when another attempt holds it."""
        token = secrets.token_hex(8)
        with redis_errors():
            taken = await self.redis.set(f"{WEBHOOK_LOCK_PREFIX}{subject}", token, nx=True,
                                         px=max(1, int(ttl_seconds * 1000)))
        return token if taken else None

    async def unlock(self, subject: str, token: str) -> None:
        """Release the attempt lock taken with ``token`` (no-op if it expired meanwhile)."""
        with redis_errors():
            await self._unlock(keys=[f"{WEBHOOK_LOCK_PREFIX}{subject}"], args=[token])

    async def disable_endpoint(self, owner: str | None, url: str, *, subject: str, at: float) -> None:
        """Mark ``owner``'s endpoint ``url`` disabled (it answered 410 Gone)."""
        value = json.dumps({"url": url, "subject": subject, "at": at})
        with redis_errors():
            await self.redis.set(disabled_key(owner, url), value)

    async def endpoint_disabled(self, owner: str | None, url: str) -> bool:
        """Whether ``owner``'s endpoint ``url`` is disabled."""
        with redis_errors():
            return bool(await self.redis.exists(disabled_key(owner, url)))

    async def enable_endpoint(self, owner: str | None, url: str) -> bool:
        """Lift a disabled mark (a redelivery asks for it); whether there was one."""
        with redis_errors():
            return bool(await self.redis.delete(disabled_key(owner, url)))

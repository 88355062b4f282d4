"""Batches: many captures submitted at once, tracked together until the last one ends.

A batch is one Redis hash: the record (JSON), a ``remaining`` counter and one ``ended:<job id>``
field per job counted. Each job of the batch decrements the counter once when it reaches a
final status; counting the same job again (a redelivered task re-settling a job whose worker
died mid-way) changes nothing. The decrement that reaches zero completes the batch, exactly
once, wherever it happens (worker or API).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.constants import BATCH_KEY_PREFIX, job_key
from shared.errors import BatchNotFound
from shared.jobs import HttpUrlStr, ScreenshotRequest, utcnow
from shared.scripts import load_script
from shared.status_store import redis_errors

#: Most URLs in one batch.
MAX_BATCH_URLS = 100


class BatchRequest(BaseModel):
    """The body of ``POST /v1/batches``: URLs plus the options they share."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"urls": ["https://example.com", "https://example.org"],
                 "options": {"format": "jpeg", "quality": 80, "full_page": True}},
            ]
        },
    )

    urls: list[HttpUrlStr] = Field(min_length=1, max_length=MAX_BATCH_URLS)
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Capture options shared by every URL: any field of POST /v1/screenshots but url.",
    )
    webhook_url: HttpUrlStr | None = Field(
        default=None, description="Called once when every capture of the batch has ended."
    )

    @field_validator("options")
    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        for name in ("url", "webhook_url"):
            if name in options:
                raise ValueError(f"{name!r} is not a shared option")
        # Checked once with a neutral URL: no option's validity depends on the URL.
        ScreenshotRequest.model_validate({**options, "url": "https://example.com"})
        return options

    def requests(self) -> list[ScreenshotRequest]:
        """One capture request per URL."""
        return [ScreenshotRequest.model_validate({**self.options, "url": url}) for url in self.urls]


class Batch(BaseModel):
    """A batch's record."""

    id: str
    created_at: datetime
    api_key_id: str | None = None
    webhook_url: str | None = None
    job_ids: list[str]
    urls: list[str]
    finished_at: datetime | None = None


def new_batch_id() -> str:
    """A fresh, unguessable batch id."""
    return uuid.uuid4().hex


def _batch_key(batch_id: str) -> str:
    return f"{BATCH_KEY_PREFIX}{batch_id}"


class BatchStore:
    """Batch records in Redis."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._job_finished = load_script(redis, __name__, "batch_job_finished")

    async def create(self, batch: Batch) -> None:
        """Write a new batch (before its jobs exist, so none can finish unseen)."""
        key = _batch_key(batch.id)
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={
                    "record": batch.model_dump_json(exclude={"finished_at"}),
                    "remaining": len(batch.job_ids),
                    "finished_at": "null",
                })
                pipe.expire(key, self.ttl_seconds)
                await pipe.execute()

    async def get(self, batch_id: str) -> Batch:
        """The batch ``batch_id``; :class:`BatchNotFound` when unknown or expired."""
        with redis_errors():
            raw = await self.redis.hgetall(_batch_key(batch_id))
        if not raw or b"record" not in raw:
            raise BatchNotFound(f"no batch with id {batch_id!r}")
        batch = Batch.model_validate_json(raw[b"record"])
        finished = json.loads(raw.get(b"finished_at", b"null"))
        if not finished:
            return batch
        return batch.model_copy(update={"finished_at": datetime.fromisoformat(finished)})

    async def job_finished(self, batch_id: str, job_id: str) -> Batch | None:
        """Count ``job_id`` as ended (once, however often it is told); the batch when that
        was its last job."""
        with redis_errors():
            completed = await self._job_finished(
                keys=[_batch_key(batch_id)], args=[json.dumps(utcnow().isoformat()), job_id]
            )
        return await self.get(batch_id) if completed == 1 else None

    async def job_states(self, batch: Batch) -> list[dict[str, Any]]:
        """Each job's id, status, cached flag and error (``None`` fields for expired jobs)."""
        fields = ("status", "cached", "error")
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in batch.job_ids:
                    pipe.hmget(job_key(job_id), fields)
                rows = await pipe.execute()
        states = []
        for job_id, url, row in zip(batch.job_ids, batch.urls, rows, strict=True):
            values = [json.loads(v) if v is not None else None for v in row]
            states.append({"id": job_id, "url": url, "status": values[0],
                           "cached": bool(values[1]), "error": values[2]})
        return states

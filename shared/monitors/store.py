"""Monitors and their runs in Redis.

A monitor is one hash (``record``: the configuration as JSON; ``anchor``, ``baseline``,
``failures``, ``firing``, ``last_slot``: its moving state, changed by scripts without
rewriting the record). Its next slot is its score in the due set; a paused monitor is not
in the due set. Its runs are a sorted set by scheduled time (the history, newest first)
plus a hash of run records. See :mod:`shared.monitors.scheduler` for how slots are claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from shared.constants import (
    ANONYMOUS_OWNER,
    MONITOR_KEY_PREFIX,
    MONITOR_RUN_DATA_PREFIX,
    MONITOR_RUNS_PREFIX,
    MONITORS_DUE_KEY,
    MONITORS_OWNER_PREFIX,
)
from shared.errors import MonitorNotFound
from shared.monitors.models import Monitor, MonitorRun
from shared.scripts import load_script
from shared.status_store import redis_errors


def monitor_key(monitor_id: str) -> str:
    """The Redis hash of ``monitor_id``."""
    return f"{MONITOR_KEY_PREFIX}{monitor_id}"


def owner_key(api_key_id: str | None) -> str:
    """The sorted set of ``api_key_id``'s monitors."""
    return f"{MONITORS_OWNER_PREFIX}{api_key_id or ANONYMOUS_OWNER}"


def runs_key(monitor_id: str) -> str:
    """The sorted set of ``monitor_id``'s runs."""
    return f"{MONITOR_RUNS_PREFIX}{monitor_id}"


def run_data_key(monitor_id: str) -> str:
    """The hash of ``monitor_id``'s run records."""
    return f"{MONITOR_RUN_DATA_PREFIX}{monitor_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class MonitorState:
    """A monitor's record and moving state, read together."""

    monitor: Monitor
    anchor: float
    next_run_at: float | None
    baseline_run_id: str | None
    failures: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A monitor slot one scheduler now has to fire."""

    monitor_id: str
    slot: float


class MonitorStore:
    """Monitors, their schedule and their runs in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._claim = load_script(redis, __name__, "claim_due")
        self._advance = load_script(redis, __name__, "advance")
        self._finish = load_script(redis, __name__, "finish_run")

    # --- Monitors -------------------------------------------------------------------------

    async def create(self, monitor: Monitor, *, first_slot: float, anchor: float) -> None:
        """Write a new monitor, due at ``first_slot`` unless it is paused."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(monitor_key(monitor.id), mapping={
                    "record": monitor.model_dump_json(), "anchor": repr(anchor), "failures": 0,
                })
                pipe.zadd(owner_key(monitor.api_key_id),
                          {monitor.id: monitor.created_at.timestamp()})
                if not monitor.paused:
                    pipe.zadd(MONITORS_DUE_KEY, {monitor.id: first_slot})
                await pipe.execute()

    async def count(self, api_key_id: str | None) -> int:
        """How many monitors ``api_key_id`` has."""
        with redis_errors():
            return int(await self.redis.zcard(owner_key(api_key_id)))

    async def get(self, monitor_id: str) -> MonitorState:
        """``monitor_id`` with its state; :class:`MonitorNotFound` when unknown."""
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hmget(monitor_key(monitor_id), ["record", "anchor", "baseline", "failures"])
                pipe.zscore(MONITORS_DUE_KEY, monitor_id)
                (record, anchor, baseline, failures), due = await pipe.execute()
        if record is None:
            raise MonitorNotFound(f"no monitor with id {monitor_id!r}")
        return MonitorState(
            monitor=Monitor.model_validate_json(record),
            anchor=float(anchor or 0),
            next_run_at=None if due is None else float(due),
            baseline_run_id=None if baseline is None else _text(baseline),
            failures=int(failures or 0),
        )

    async def for_firing(self, monitor_ids: list[str]) -> dict[str, tuple[Monitor, float]]:
        """The record and interval anchor of those of ``monitor_ids`` that exist (one round
        trip)."""
        if not monitor_ids:
            return {}
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for monitor_id in monitor_ids:
                    pipe.hmget(monitor_key(monitor_id), ["record", "anchor"])
                rows = await pipe.execute()
        return {mid: (Monitor.model_validate_json(record), float(anchor or 0))
                for mid, (record, anchor) in zip(monitor_ids, rows, strict=True)
                if record is not None}

    async def list_ids(self, api_key_id: str | None, *, limit: int,
                   cursor: float | None) -> tuple[list[str], float | None]:
        """Up to ``limit`` of the owner's monitor ids, oldest first, created after
        ``cursor``; and the cursor of the next page (``None``: this was the last)."""
        low = "-inf" if cursor is None else f"({cursor!r}"
        with redis_errors():
            rows: list[Any] = await self.redis.zrangebyscore(
                owner_key(api_key_id), low, "+inf", start=0, num=limit + 1, withscores=True)
        page = rows[:limit]
        next_cursor = float(page[-1][1]) if len(rows) > limit else None
        return [_text(member) for member, _ in page], next_cursor

    async def replace(self, monitor: Monitor) -> None:
        """Write ``monitor``'s record (a PATCH); its state is untouched."""
        with redis_errors():
            await self.redis.hset(monitor_key(monitor.id), "record", monitor.model_dump_json())

    async def reschedule(self, monitor: Monitor, *, next_slot: float | None,
                         anchor: float | None = None) -> None:
        """Write ``monitor``'s record and put it in the due set at ``next_slot``, or take it
        out (``None``: paused). A slot being fired is given up."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                key = monitor_key(monitor.id)
                pipe.hset(key, "record", monitor.model_dump_json())
                if anchor is not None:
                    pipe.hset(key, "anchor", repr(anchor))
                pipe.hdel(key, "firing")
                if next_slot is None:
                    pipe.zrem(MONITORS_DUE_KEY, monitor.id)
                else:
                    pipe.zadd(MONITORS_DUE_KEY, {monitor.id: next_slot})
                await pipe.execute()

    async def reset_baseline(self, monitor_id: str) -> None:
        """Forget the baseline: the next good run becomes it without a comparison."""
        with redis_errors():
            await self.redis.hdel(monitor_key(monitor_id), "baseline")

    async def delete(self, monitor: Monitor) -> None:
        """Remove the monitor, its schedule and its history."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(monitor_key(monitor.id), runs_key(monitor.id),
                            run_data_key(monitor.id))
                pipe.zrem(MONITORS_DUE_KEY, monitor.id)
                pipe.zrem(owner_key(monitor.api_key_id), monitor.id)
                await pipe.execute()

    # --- Schedule -------------------------------------------------------------------------

    async def claim_due(self, *, now: float, lease_seconds: float, limit: int) -> list[Claim]:
        """The slots due by ``now`` that this caller now fires (atomic: two schedulers never
        get the same one); each comes due again after ``lease_seconds`` unless advanced."""
        with redis_errors():
            raw = await self._claim(keys=[MONITORS_DUE_KEY],
                                    args=[now, now + lease_seconds, limit, MONITOR_KEY_PREFIX])
        return [Claim(_text(raw[i]), float(raw[i + 1])) for i in range(0, len(raw), 2)]

    async def advance(self, fired: list[tuple[str, float, float]]) -> int:
        """Confirm each ``(monitor id, slot fired, next slot)``; how many applied."""
        if not fired:
            return 0
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for monitor_id, slot, nxt in fired:
                    await self._advance(keys=[monitor_key(monitor_id), MONITORS_DUE_KEY],
                                        args=[monitor_id, repr(slot), nxt], client=pipe)
                results = await pipe.execute()
        return sum(int(r) for r in results)

    async def next_due(self) -> float | None:
        """When the earliest slot in the due set falls (``None``: no active monitor)."""
        with redis_errors():
            first: list[Any] = await self.redis.zrange(MONITORS_DUE_KEY, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def due_count(self) -> int:
        """Monitors in the due set (paused ones are not)."""
        with redis_errors():
            return int(await self.redis.zcard(MONITORS_DUE_KEY))

    # --- Runs -----------------------------------------------------------------------------

    async def add_runs(self, runs: list[MonitorRun]) -> list[bool]:
        """Record new runs (queued); a run already recorded is left as it is. For each run,
        whether it was new."""
        if not runs:
            return []
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for run in runs:
                    pipe.hsetnx(run_data_key(run.monitor_id), run.id, run.model_dump_json())
                    pipe.zadd(runs_key(run.monitor_id), {run.id: run.scheduled_at.timestamp()})
                results = await pipe.execute()
        return [bool(r) for r in results[::2]]

    async def get_run(self, monitor_id: str, run_id: str) -> MonitorRun | None:
        """The run ``run_id`` of ``monitor_id``, if it is still kept."""
        with redis_errors():
            raw = await self.redis.hget(run_data_key(monitor_id), run_id)
        return None if raw is None else MonitorRun.model_validate_json(raw)

    async def runs(self, monitor_id: str, *, limit: int,
                   cursor: float | None) -> tuple[list[MonitorRun], float | None]:
        """Up to ``limit`` runs, newest first, scheduled before ``cursor``; and the next
        page's cursor."""
        high = "+inf" if cursor is None else f"({cursor!r}"
        with redis_errors():
            rows: list[Any] = await self.redis.zrevrangebyscore(
                runs_key(monitor_id), high, "-inf", start=0, num=limit + 1, withscores=True)
            page = rows[:limit]
            ids = [_text(member) for member, _ in page]
            raws = await self.redis.hmget(run_data_key(monitor_id), ids) if ids else []
        runs = [MonitorRun.model_validate_json(raw) for raw in raws if raw is not None]
        next_cursor = float(page[-1][1]) if len(rows) > limit else None
        return runs, next_cursor

    async def finish_run(self, run: MonitorRun, *, good: bool) -> tuple[bool, int]:
        """Record finished ``run`` once: a good run becomes the baseline and clears the
        failure count, a failed one adds to it. Returns (applied, failures in a row)."""
        with redis_errors():
            applied, failures = await self._finish(
                keys=[monitor_key(run.monitor_id), run_data_key(run.monitor_id)],
                args=[run.id, run.model_dump_json(), "good" if good else "failed"])
        return bool(applied), int(failures)

    async def trim_runs(self, monitor_id: str, *, keep_runs: int, keep_days: int | None,
                        keep: set[str], now: float) -> list[MonitorRun]:
        """Drop runs beyond the newest ``keep_runs`` and older than ``keep_days``, except
        those in ``keep`` (the baseline). Returns the runs dropped."""
        key = runs_key(monitor_id)
        with redis_errors():
            old = [_text(m) for m in await self.redis.zrevrange(key, keep_runs, -1)]
            if keep_days is not None:
                cutoff = now - keep_days * 86400
                old += [_text(m) for m in await self.redis.zrangebyscore(key, "-inf", f"({cutoff!r}")]
            drop = sorted(set(old) - keep)
            if not drop:
                return []
            raws = await self.redis.hmget(run_data_key(monitor_id), drop)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(key, *drop)
                pipe.hdel(run_data_key(monitor_id), *drop)
                await pipe.execute()
        return [MonitorRun.model_validate_json(raw) for raw in raws if raw is not None]


def utc(timestamp: float) -> datetime:
    """``timestamp`` as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, UTC)

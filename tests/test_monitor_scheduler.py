"""The monitor scheduler against a real redis-server: each slot fires once, whoever races
for it; a scheduler dying mid-tick loses nothing and duplicates nothing; after downtime a
monitor runs once; paused monitors do not run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from shared.connections import create_redis
from shared.constants import JOB_KEY_PREFIX, MONITORS_DUE_KEY, fair_jobs_key
from shared.fair_queue import FairQueue
from shared.jobs import CaptureOptions
from shared.monitors.models import (
    Monitor,
    MonitorRequest,
    Schedule,
    build_monitor,
    new_monitor_id,
    slot_run_id,
)
from shared.monitors.runs import MASK_COLOUR, RunStarter, run_options
from shared.monitors.schedule import first_slot, next_slot
from shared.monitors.scheduler import MonitorScheduler
from shared.monitors.store import MonitorStore, runs_key
from shared.status_store import StatusStore
from tests.servers import REPO_ROOT, child_env

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15), far from any real clock


def monitor_request(**overrides: Any) -> MonitorRequest:
    values: dict[str, Any] = {"capture": {"url": "https://example.com"},
                              "schedule": {"interval_seconds": 60}}
    values.update(overrides)
    return MonitorRequest.model_validate(values)


async def create_monitors(store: MonitorStore, count: int, *, now: float = T0,
                          owner: str | None = "key1", **overrides: Any) -> list[Monitor]:
    monitors = []
    for _ in range(count):
        request = monitor_request(**overrides)
        monitor = build_monitor(request, monitor_id=new_monitor_id(), api_key_id=owner,
                                now=datetime.fromtimestamp(now, UTC))
        await store.create(monitor, first_slot=first_slot(monitor.schedule, now=now), anchor=now)
        monitors.append(monitor)
    return monitors


class Parts:
    """A monitor store, a run starter and schedulers over one Redis client each."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.clients: list[Any] = []

    def scheduler(self, **kwargs: Any) -> MonitorScheduler:
        client = create_redis(self.redis_url)
        self.clients.append(client)
        store = StatusStore(client, ttl_seconds=3600, queued_deadline=100)
        monitors = MonitorStore(client)
        starter = RunStarter(monitors, store, FairQueue(client, store, ahead=10, stale_after=600))
        return MonitorScheduler(monitors, starter, **kwargs)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


def run_with(redis_url: str, scenario: Callable[[Parts], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        parts = Parts(redis_url)
        try:
            return await scenario(parts)
        finally:
            await parts.close()
    return asyncio.run(main())


def queued_jobs(redis_url: str, owner: str = "key1") -> list[str]:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        members: list[bytes] = client.lrange(fair_jobs_key(owner), 0, -1)  # type: ignore[assignment]
        return [m.decode() for m in members]
    finally:
        client.close()


def test_schedule_slots() -> None:
    every_minute = Schedule(interval_seconds=60)
    assert first_slot(every_minute, now=T0) == T0
    assert next_slot(every_minute, after=T0, anchor=T0) == T0 + 60
    assert next_slot(every_minute, after=T0 + 59.9, anchor=T0) == T0 + 60
    # After an hour of downtime, the next slot is the first one after now, not the missed ones.
    assert next_slot(every_minute, after=T0 + 3600.5, anchor=T0) == T0 + 3660
    hourly_berlin = Schedule(cron="0 * * * *", timezone="Europe/Berlin")
    at = datetime(2027, 3, 28, 0, 30, tzinfo=UTC).timestamp()  # the night clocks go forward
    assert next_slot(hourly_berlin, after=at, anchor=at) == at + 1800
    nine_berlin = Schedule(cron="0 9 * * *", timezone="Europe/Berlin")
    assert datetime.fromtimestamp(next_slot(nine_berlin, after=at, anchor=at), UTC).hour == 7


def test_run_options_hide_and_mask() -> None:
    request = monitor_request(hide_selectors=[".ad"], mask_selectors=["#clock", ".ticker"],
                              capture={"url": "https://example.com", "css": "body{margin:0}"})
    monitor = build_monitor(request, monitor_id="m", api_key_id=None,
                            now=datetime.fromtimestamp(T0, UTC))
    options = run_options(monitor)
    assert options.hide_selectors == [".ad"]
    assert options.css is not None and options.css.startswith("body{margin:0}")
    assert f"#clock, .ticker {{ background: {MASK_COLOUR}" in options.css
    assert "#clock *, .ticker * { visibility: hidden" in options.css
    assert run_options(build_monitor(monitor_request(), monitor_id="m", api_key_id=None,
                                     now=datetime.fromtimestamp(T0, UTC))) \
        == CaptureOptions(url="https://example.com")


def test_two_schedulers_racing_fire_each_slot_once(redis_url: str) -> None:
    async def scenario(parts: Parts) -> None:
        a, b = parts.scheduler(batch=50), parts.scheduler(batch=50)
        monitors = await create_monitors(a.monitors, 400)
        fired: list[str] = []
        for now in (T0, T0 + 30, T0 + 60.5, T0 + 61):
            while True:
                ra, rb = await asyncio.gather(a.tick(now=now), b.tick(now=now))
                fired += ra.fired + rb.fired
                if not ra.claimed and not rb.claimed:
                    break
        # Two slots each (T0 and T0 + 60), each fired by exactly one of the two.
        assert len(fired) == len(set(fired)) == 800
        expected = {slot_run_id(m.id, s) for m in monitors for s in (T0, T0 + 60)}
        assert set(fired) == expected
        assert sorted(queued_jobs(redis_url)) == sorted(expected)
        assert await a.monitors.due_count() == 400
        state = await a.monitors.get(monitors[0].id)
        assert state.next_run_at == T0 + 120

    run_with(redis_url, scenario)


class Crash(Exception):
    pass


def test_scheduler_dying_mid_tick_loses_and_duplicates_nothing(redis_url: str) -> None:
    async def scenario(parts: Parts) -> None:
        dying, survivor = parts.scheduler(batch=100), parts.scheduler(batch=100)
        monitors = await create_monitors(dying.monitors, 30)
        # The first dies after claiming, before submitting; the second after submitting,
        # before confirming.
        original_start = dying.starter.start

        async def die_before_submit(planned: Any) -> Any:
            raise Crash

        object.__setattr__(dying, "starter", type("S", (), {"start": staticmethod(die_before_submit)})())
        with pytest.raises(Crash):
            await dying.tick(now=T0)
        assert not queued_jobs(redis_url)
        # Within the lease nobody fires those slots again...
        assert (await survivor.tick(now=T0 + 10)).claimed == 0

        async def die_before_confirm(*args: Any, **kwargs: Any) -> Any:
            raise Crash

        # ...after it, the survivor fires the same slot (T0), not the next one.
        report = await survivor.tick(now=T0 + 61)
        assert sorted(report.fired) == sorted(slot_run_id(m.id, T0) for m in monitors)
        assert len(queued_jobs(redis_url)) == 30

        # Now the survivor dies after submitting the T0 + 120 slot, before confirming it.
        object.__setattr__(survivor.monitors, "advance", die_before_confirm)
        with pytest.raises(Crash):
            await survivor.tick(now=T0 + 121)
        assert len(queued_jobs(redis_url)) == 60
        restarted = parts.scheduler(batch=100)
        report = await restarted.tick(now=T0 + 121 + 61)
        assert sorted(report.fired) == sorted(slot_run_id(m.id, T0 + 120) for m in monitors)
        jobs = queued_jobs(redis_url)
        assert len(jobs) == len(set(jobs)) == 60  # the second firing submitted nothing new
        state = await restarted.monitors.get(monitors[0].id)
        assert state.next_run_at == T0 + 240
        runs = sync_redis.Redis.from_url(redis_url).zcard(runs_key(monitors[0].id))
        assert runs == 2
        del original_start

    run_with(redis_url, scenario)


def test_after_downtime_a_monitor_runs_once(redis_url: str) -> None:
    async def scenario(parts: Parts) -> None:
        scheduler = parts.scheduler()
        monitors = await create_monitors(scheduler.monitors, 5)
        assert len((await scheduler.tick(now=T0)).fired) == 5
        # Down for an hour: 60 slots missed, one run each, then back on the grid.
        report = await scheduler.tick(now=T0 + 3600.5)
        assert len(report.fired) == 5
        assert (await scheduler.tick(now=T0 + 3601)).claimed == 0
        state = await scheduler.monitors.get(monitors[0].id)
        assert state.next_run_at == T0 + 3660

    run_with(redis_url, scenario)


def test_paused_and_deleted_monitors_do_not_run(redis_url: str) -> None:
    async def scenario(parts: Parts) -> None:
        scheduler = parts.scheduler()
        paused = await create_monitors(scheduler.monitors, 3, paused=True)
        active = await create_monitors(scheduler.monitors, 2)
        await scheduler.monitors.delete(active[1])
        report = await scheduler.tick(now=T0 + 1000)
        assert report.fired == [slot_run_id(active[0].id, T0)]
        for monitor in paused:
            assert (await scheduler.monitors.get(monitor.id)).next_run_at is None

    run_with(redis_url, scenario)


KILL_SCRIPT = """
import asyncio, sys
from shared.connections import create_redis
from shared.fair_queue import FairQueue
from shared.monitors.runs import RunStarter
from shared.monitors.scheduler import MonitorScheduler
from shared.monitors.store import MonitorStore
from shared.status_store import StatusStore

async def main():
    client = create_redis(sys.argv[1])
    store = StatusStore(client, ttl_seconds=3600, queued_deadline=100)
    monitors = MonitorStore(client)
    scheduler = MonitorScheduler(monitors, RunStarter(monitors, store, FairQueue(
        client, store, ahead=10, stale_after=600)), batch=int(sys.argv[2]))
    while True:
        await scheduler.tick(now=float(sys.argv[3]))

asyncio.run(main())
"""


def test_killed_scheduler_process_loses_and_duplicates_nothing(redis_url: str,
                                                               tmp_path: Path) -> None:
    """A real process SIGKILLed while it fires 3000 slots; a second one finishes the job."""
    count = 3000

    async def create(parts: Parts) -> list[Monitor]:
        # Slots 120 s apart: past the dead one's leases (60 s), before anyone's next slot.
        return await create_monitors(parts.scheduler().monitors, count,
                                     schedule={"interval_seconds": 120})

    monitors = run_with(redis_url, create)
    client = sync_redis.Redis.from_url(redis_url)
    log_path = tmp_path / "scheduler.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, redis_url, "50", str(T0)],
                                   env=child_env({}), cwd=REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(client.keys(f"{JOB_KEY_PREFIX}*")) < count // 3:
            assert process.poll() is None, log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.005)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    submitted = len(client.keys(f"{JOB_KEY_PREFIX}*"))
    assert 0 < submitted < count, "the kill should land mid-way"

    async def finish(parts: Parts) -> None:
        scheduler = parts.scheduler(batch=500)
        while (await scheduler.tick(now=T0 + 61)).claimed:  # past the dead one's leases
            pass

    run_with(redis_url, finish)
    jobs = queued_jobs(redis_url)
    assert len(jobs) == len(set(jobs)) == count
    assert set(jobs) == {slot_run_id(m.id, T0) for m in monitors}
    assert client.zcard(MONITORS_DUE_KEY) == count
    scored: list[tuple[bytes, float]] = client.zrange(  # type: ignore[assignment]
        MONITORS_DUE_KEY, 0, -1, withscores=True)
    assert {score for _, score in scored} == {T0 + 120}
    client.close()


def test_scheduled_runs_are_charged_to_the_keys_quota(redis_url: str,
                                                      make_settings: Callable[..., Any]) -> None:
    """A key with a monthly quota of 3 and five monitors: three runs get jobs, two are
    recorded failed with quota_exceeded; a revoked key's monitor does not run."""
    from shared.apikeys import KeyStore
    from worker.monitor_scheduler import quota_charge

    async def scenario(parts: Parts) -> None:
        scheduler = parts.scheduler()
        client = parts.clients[0]
        keys = KeyStore(client)
        limited = await keys.create("limited", monthly_quota=3)
        revoked = await keys.create("revoked")
        await keys.revoke(revoked.record.id)
        object.__setattr__(scheduler.starter, "charge", quota_charge(make_settings(), client))
        mine = await create_monitors(scheduler.monitors, 5, owner=limited.record.id)
        gone = await create_monitors(scheduler.monitors, 1, owner=revoked.record.id)
        assert len((await scheduler.tick(now=T0)).fired) == 6
        outcomes = []
        for monitor in [*mine, *gone]:
            runs, _ = await scheduler.monitors.runs(monitor.id, limit=10, cursor=None)
            outcomes.append((runs[0].status.value, runs[0].error.code if runs[0].error else None))
        assert sorted(outcomes[:5]) == [("failed", "quota_exceeded")] * 2 + [("queued", None)] * 3
        assert outcomes[5] == ("failed", "not_found")
        assert len(queued_jobs(redis_url, limited.record.id)) == 3
        assert (await scheduler.monitors.get(mine[0].id)).next_run_at == T0 + 60

    run_with(redis_url, scenario)


def test_a_quota_refused_run_counts_as_a_failure_and_sends_monitor_failed(
    redis_url: str, make_settings: Callable[..., Any],
) -> None:
    """Runs refused by the quota are failures in a row like failed captures: the one that
    reaches MONITOR_FAILURES_BEFORE_ALERT records a ``monitor.failed`` delivery."""
    from shared.apikeys import KeyStore
    from shared.monitors.events import monitor_subject
    from shared.webhooks.listener import WebhookListener
    from shared.webhooks.payload import EventType
    from shared.webhooks.store import DeliveryStore
    from worker.monitor_scheduler import alert_on_refusal, quota_charge

    settings = make_settings(monitor_failures_before_alert=2)

    async def scenario(parts: Parts) -> None:
        scheduler = parts.scheduler()
        client = parts.clients[0]
        deliveries = DeliveryStore(client, ttl_seconds=3600)
        object.__setattr__(scheduler.starter, "charge", quota_charge(settings, client))
        object.__setattr__(scheduler.starter, "on_refused", alert_on_refusal(
            settings, WebhookListener(deliveries, enqueue=None)))
        spent = await KeyStore(client).create("spent", monthly_quota=1)
        (monitor,) = await create_monitors(scheduler.monitors, 1, owner=spent.record.id,
                                           webhook_url="https://hooks.example.com/in")
        subjects = []
        for tick in range(3):  # quota 1: the first run gets a job, the next two are refused
            now = T0 + 60 * tick
            assert len((await scheduler.tick(now=now)).fired) == 1
            runs, _ = await scheduler.monitors.runs(monitor.id, limit=1, cursor=None)
            subjects.append(monitor_subject(monitor.id, runs[0].id))
        first, once, twice = [await deliveries.get(subject) for subject in subjects]
        assert first is None and once is None  # a job; then one failure: under the threshold
        assert twice is not None and twice.event is EventType.monitor_failed
        assert twice.url == "https://hooks.example.com/in" and twice.owner == spent.record.id
        assert (await scheduler.monitors.get(monitor.id)).failures == 2

    run_with(redis_url, scenario)

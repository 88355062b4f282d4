"""The dispatcher: releases waiting captures into the Celery capture queue, fairly.

Captures wait in per-owner lists (:mod:`shared.fair_queue`). A dispatcher thread runs in the
main process of every capture worker (several are safe: each claim is one atomic Lua
script). It sleeps on a Redis wake list that the API pushes to on every submit and the
worker pushes to when a released capture starts, so an idle fleet starts a new job within
a round trip or two; every :data:`IDLE_WAKE_SECONDS` it also looks by itself (leases to
renew, stale entries to age out). Each pass claims up to the deficit below
``SHOTLINE_DISPATCH_AHEAD`` in one call, publishes those tasks with the job's stored
request id and trace context, and confirms them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import structlog
from celery import Celery

from shared.composition import build_components
from shared.errors import ShotlineError
from shared.fair_queue import FairQueue, Release
from shared.queue import enqueue_capture, make_celery
from shared.settings import Settings
from worker.background import BackgroundLoop

log = structlog.get_logger("shotline.dispatcher")

#: Longest sleep between two passes when nothing wakes the dispatcher.
IDLE_WAKE_SECONDS = 1.0

#: Sends the capture tasks of a pass (blocking; run in a thread); the ids it sent.
Publish = Callable[[Sequence[Release]], list[str]]


class Dispatcher:
    """Claims waiting captures and publishes their tasks; see the module docstring."""

    def __init__(self, fair: FairQueue, publish: Publish, *,
                 idle_wake: float = IDLE_WAKE_SECONDS) -> None:
        self.fair = fair
        self.publish = publish
        self.idle_wake = idle_wake

    async def dispatch(self) -> list[str]:
        """One pass: claim, publish, confirm. Returns the ids published.

        A task that could not be published stays claimed; its lease runs out and a later
        pass publishes it again (so does any dispatcher, if this one dies meanwhile).
        """
        claimed = await self.fair.claim()
        sent = await asyncio.to_thread(self.publish, claimed) if claimed else []
        await self.fair.published(sent)
        if sent:
            log.debug("captures released", jobs=len(sent))
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch on every wake-up until ``stop`` is set; survives Redis and broker outages."""
        while not stop.is_set():
            try:
                await self.dispatch()
                await self.fair.wait_for_work(self.idle_wake)
            except ShotlineError as exc:
                log.warning("dispatch failed; trying again later", error=exc.message)
                await _sleep_unless(stop, self.idle_wake)
            except Exception:
                log.exception("dispatch crashed; trying again later")
                await _sleep_unless(stop, self.idle_wake)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def publish_all(app: Celery, releases: Sequence[Release]) -> list[str]:
    """Send ``releases``' capture tasks on one producer connection (one thread hand-off and
    one pooled connection per pass, not per task); the ids sent. A task that could not be
    sent stays claimed: its lease runs out and a later pass publishes it again."""
    sent: list[str] = []
    with app.producer_or_acquire() as producer:
        for release in releases:
            try:
                enqueue_capture(app, release.job_id, request_id=release.request_id,
                                traceparent=release.traceparent, producer=producer)
            except Exception as exc:
                log.warning("could not publish a capture task; it is published again after"
                            " its lease", job_id=release.job_id, request_id=release.request_id,
                            error=str(exc))
                continue
            sent.append(release.job_id)
    return sent


def dispatcher_thread(settings: Settings) -> BackgroundLoop:
    """A (not yet started) dispatcher thread with its own Redis client and Celery producer."""

    def build() -> tuple[Dispatcher, Callable[[], Awaitable[None]]]:
        producer = make_celery(settings)
        components = build_components(settings, producer=producer, max_connections=4)

        def publish(releases: Sequence[Release]) -> list[str]:
            return publish_all(producer, releases)

        async def close() -> None:
            producer.close()
            await components.aclose()

        return Dispatcher(components.fair, publish), close

    return BackgroundLoop(build, name="shotline-dispatcher")

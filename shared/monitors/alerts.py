"""Sending a monitor's ``monitor.changed`` / ``monitor.failed`` webhook for one of its runs:
used by the worker when a run's capture ends and by the run starter when the quota refuses
a run (no capture at all). The event's body is rendered per attempt
(:mod:`shared.monitors.events`)."""

from __future__ import annotations

from shared.monitors.events import monitor_subject
from shared.monitors.models import Monitor, MonitorRun
from shared.webhooks.delivery import open_event_delivery
from shared.webhooks.listener import WebhookListener
from shared.webhooks.payload import EventType


async def notify(webhooks: WebhookListener, monitor: Monitor, run: MonitorRun,
                 event: EventType) -> None:
    """Record and send ``event`` about ``run`` to ``monitor``'s webhook (if it has one)."""
    url = monitor.webhook_url
    if url is None:
        return
    subject = monitor_subject(monitor.id, run.id)
    await webhooks.schedule(subject, lambda due, now: open_event_delivery(
        webhooks.deliveries, subject, event, record_id=run.id, url=url,
        owner=monitor.api_key_id, due=due, now=now))

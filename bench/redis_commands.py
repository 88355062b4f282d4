"""Redis commands per job, counted with ``MONITOR`` while a batch of jobs runs end to end.

``MONITOR`` reports every command the server executes: those clients send (one round trip
each, or one per pipeline member) and those Lua scripts run (``client_type`` ``lua``). Both
are counted, split that way and by command name, per job. The bench's own polling client is
left out (by its address); everything else on the Redis counts — the API, the dispatcher,
the worker and kombu's idle polling alike — since all of it is the platform's cost per job.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

#: Sent through the monitored server to end the watch.
SENTINEL = "shotline-bench-monitor-stop"


@dataclass
class CommandCount:
    """What ``MONITOR`` saw: commands by name, sent by clients or run inside scripts."""

    client: Counter[str] = field(default_factory=Counter)
    lua: Counter[str] = field(default_factory=Counter)

    def per_job(self, jobs: int) -> dict[str, Any]:
        """The counts divided by ``jobs``: totals and the most frequent client commands."""
        top = {name: round(count / jobs, 2) for name, count in self.client.most_common(12)}
        return {
            "client_commands_per_job": round(sum(self.client.values()) / jobs, 2),
            "commands_in_scripts_per_job": round(sum(self.lua.values()) / jobs, 2),
            "all_commands_per_job": round((sum(self.client.values()) + sum(self.lua.values()))
                                          / jobs, 2),
            "client_commands_per_job_by_name": top,
        }


class Monitor:
    """Counts the commands a Redis executes while the ``with`` block runs, except those of
    the clients whose addresses are in ``ignore`` (``host:port`` as ``CLIENT INFO`` says)."""

    def __init__(self, url: str, *, ignore: set[str]) -> None:
        self.url = url
        self.ignore = ignore
        self.count = CommandCount()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-monitor", daemon=True)

    def _watch(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            with client.monitor() as monitor:  # type: ignore[no-untyped-call]
                self._ready.set()
                for entry in monitor.listen():
                    command = str(entry["command"])
                    if SENTINEL in command:
                        break
                    if entry.get("client_address") and \
                            f"{entry['client_address']}:{entry['client_port']}" in self.ignore:
                        continue
                    name = command.split(" ", 1)[0].upper()
                    target = self.count.lua if entry.get("client_type") == "lua" else self.count.client
                    target[name] += 1
        finally:
            client.close()

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.echo(SENTINEL)
        finally:
            client.close()
        self._thread.join(30)

"""Redis commands per job, counted with ``MONITOR`` while a batch of jobs runs end to end.

``MONITOR`` reports every command the server executes: those clients send (one round trip
each, or one per pipeline member) and those Lua scripts run (``client_type`` ``lua``). Both
are counted, split that way and by command name, per job. The bench's own polling client is
left out (by its address); everything else on the Redis counts — the API, the dispatcher,
the worker and kombu's idle polling alike — since all of it is the platform's cost per job.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
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
    the clients whose addresses are in ``ignore`` (``host:port`` as ``CLIENT INFO`` says).

    ``redis-cli monitor`` writes the stream to a file in a process of its own, parsed after
    the block: reading it in the load generator's process would take the GIL from the load
    generator (a MONITOR stream is tens of thousands of lines a second).
    """

    def __init__(self, url: str, *, ignore: set[str], workdir: Path) -> None:
        self.url = url
        self.ignore = ignore
        self.path = workdir / "monitor.txt"
        self.count = CommandCount()
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Monitor:
        executable = shutil.which("redis-cli")
        if executable is None:
            raise RuntimeError("redis-cli is not installed (Debian package redis-tools)")
        with self.path.open("wb") as out:
            self._process = subprocess.Popen([executable, "-u", self.url, "monitor"], stdout=out,
                                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while b"OK" not in self.path.read_bytes()[:100] and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.echo(SENTINEL)
        finally:
            client.close()
        deadline = time.monotonic() + 120
        while SENTINEL.encode() not in self.path.read_bytes()[-4096:] and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        self._parse()

    def _parse(self) -> None:
        with self.path.open(errors="replace") as lines:
            for line in lines:
                match = _LINE.match(line)
                if match is None:
                    continue
                client, name = match.group(1), match.group(2).upper()
                if SENTINEL in line:
                    break
                if client == "lua":
                    self.count.lua[name] += 1
                elif client not in self.ignore:
                    self.count.client[name] += 1


#: ``1712345678.123456 [0 127.0.0.1:53422] "EVALSHA" "…"`` (``[0 lua]`` inside scripts).
_LINE = re.compile(r'^\S+ \[\d+ ([^\]]+)\] "([^"]+)"')

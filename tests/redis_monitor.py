"""The commands clients send to a real Redis, watched with ``MONITOR``: how tests count round
trips (one per command or script sent; what scripts run inside is left out)."""

from __future__ import annotations

import threading

import redis


class Monitor:
    """Every command clients send to Redis (MONITOR), commands run by scripts left out."""

    SENTINEL = "shotline-monitor-stop"

    def __init__(self, url: str) -> None:
        self.url = url
        self.commands: list[str] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        client = redis.Redis.from_url(self.url)
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            self._ready.set()
            for entry in monitor.listen():
                command = str(entry["command"])
                if self.SENTINEL in command:
                    break
                if entry.get("client_type") != "lua":
                    self.commands.append(command.split(" ", 1)[0].upper())
        client.close()

    @property
    def sent(self) -> list[str]:
        """The commands seen, the connections' handshakes left out (the watch's own
        connection and any a pool opens: one-off, not the work's)."""
        return [c for c in self.commands if c not in ("HELLO", "CLIENT", "SELECT")]

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        client = redis.Redis.from_url(self.url)
        client.echo(self.SENTINEL)
        client.close()
        self._thread.join(10)

"""The compose stack: docker-compose.yml plus deploy/docker-test/compose.override.yml, under
a project name of its own so it never touches a ``shotline`` stack already on the engine."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.docker_test.console import Shell, StepFailed, check, say

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = (REPO_ROOT / "docker-compose.yml",
                 REPO_ROOT / "deploy" / "docker-test" / "compose.override.yml")
#: Services that run once and exit 0 (the others wait for them).
ONE_SHOT = {"minio-init"}


@dataclass
class Stack:
    """``docker compose`` against the test's project."""

    shell: Shell
    compose_command: list[str]
    project: str

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        """Run one compose subcommand; returns its standard output."""
        files = [arg for path in COMPOSE_FILES for arg in ("--file", str(path))]
        completed = self.shell.run([*self.compose_command, "--project-name", self.project,
                                    "--project-directory", str(REPO_ROOT), *files, *args],
                                   check=check, timeout=timeout)
        return completed.stdout

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """The project's containers (running or not), as ``docker inspect`` describes them."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.shell.run(["docker", "ps", "-aq", *filters], quiet=True).stdout.split()
        if not ids:
            return []
        described: list[dict[str, Any]] = json.loads(
            self.shell.run(["docker", "inspect", *ids], quiet=True).stdout)
        return sorted(described, key=lambda c: str(c["Name"]))

    def running(self, service: str) -> list[dict[str, Any]]:
        """The service's running containers."""
        return [c for c in self.containers(service) if c["State"]["Running"]]

    def wait_healthy(self, *, timeout: float = 300, expect: dict[str, int] | None = None) -> None:
        """Wait until every container is healthy (one-shot ones exited 0), printing changes;
        ``expect`` names how many running containers a service must have."""
        deadline = time.monotonic() + timeout
        last: dict[str, str] = {}
        while True:
            states: dict[str, str] = {}
            counts: dict[str, int] = {}
            for container in self.containers():
                service = container["Config"]["Labels"]["com.docker.compose.service"]
                name = str(container["Name"]).lstrip("/")
                state = container["State"]
                if service in ONE_SHOT:
                    states[name] = ("done" if state["Status"] == "exited" and state["ExitCode"] == 0
                                    else f"{state['Status']} (exit {state['ExitCode']})")
                    continue
                if not state["Running"]:
                    states[name] = f"{state['Status']} (exit {state['ExitCode']})"
                    continue
                counts[service] = counts.get(service, 0) + 1
                health = state.get("Health")
                states[name] = health["Status"] if health else "running (no healthcheck)"
            for name, status in sorted(states.items()):
                if last.get(name) != status:
                    say(f"   {name}: {status}")
            last = states
            ready = all(status in ("healthy", "done") for status in states.values())
            counted = all(counts.get(service, 0) == n for service, n in (expect or {}).items())
            if states and ready and counted:
                return
            if time.monotonic() > deadline:
                raise StepFailed(f"not healthy after {timeout:.0f} s: {states}, running {counts}")
            time.sleep(2)

    def logs(self, service: str) -> str:
        """The service's logs, each line prefixed with its container's name."""
        return self.compose("logs", "--no-color", service, check=False)

    def assert_nothing_left(self) -> None:
        """After ``down``: no container of the project exists any more."""
        left = [str(c["Name"]) for c in self.containers()]
        check(not left, f"containers left after down: {left}")

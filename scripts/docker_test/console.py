"""Steps and commands, printed as they happen; long outputs go to log files instead."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_START = time.monotonic()


class StepFailed(RuntimeError):
    """Raised when a step of the docker test does not hold; the message says what was seen."""


def say(message: str) -> None:
    """One line of progress, stamped with the time since the run began."""
    elapsed = int(time.monotonic() - _START)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", flush=True)


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """Announce a step, then its duration (or that it failed)."""
    say(f"==> {title}")
    began = time.monotonic()
    try:
        yield
    except BaseException:
        say(f"FAILED: {title} (after {time.monotonic() - began:.1f} s)")
        raise
    say(f"ok: {title} ({time.monotonic() - began:.1f} s)")


def check(condition: bool, message: str) -> None:
    """Fail the current step with ``message`` unless ``condition`` holds."""
    if not condition:
        raise StepFailed(message)


@dataclass
class Shell:
    """Runs commands with a fixed environment; prints each one, logs long outputs."""

    env: dict[str, str]
    log_dir: Path
    secrets: list[str] = field(default_factory=list)

    def _shown(self, args: Sequence[str]) -> str:
        text = shlex.join(args)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 600,
            quiet: bool = False, input: str | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``args`` and return what it printed; a failure (with ``check``) raises StepFailed."""
        if not quiet:
            say(f"$ {self._shown(args)}")
        completed = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                                   env={**self.env, **(env or {})}, input=input, check=False)
        if check and completed.returncode != 0:
            raise StepFailed(f"`{self._shown(args)}` exited with {completed.returncode}:\n"
                             f"{completed.stdout[-2000:]}{completed.stderr[-3000:]}")
        return completed

    def run_logged(self, args: Sequence[str], log_name: str, *, timeout: float = 1800) -> float:
        """Run a long command with its output in ``log_dir/log_name``; returns the seconds taken."""
        log_path = self.log_dir / log_name
        say(f"$ {self._shown(args)}   (output: {log_path})")
        began = time.monotonic()
        with log_path.open("w") as log:
            completed = subprocess.run(list(args), stdout=log, stderr=subprocess.STDOUT,
                                       timeout=timeout, env=self.env, check=False)
        seconds = time.monotonic() - began
        if completed.returncode != 0:
            tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-40:])
            raise StepFailed(f"`{self._shown(args)}` exited with {completed.returncode}; "
                             f"last lines of {log_path}:\n{tail}")
        return seconds

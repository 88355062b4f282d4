"""Finding the processes a test started, and what they left behind, in /proc (via psutil).

A test gives the processes it starts a marker variable in their environment; Playwright's
driver and Chromium inherit it. Chromium's zygote-forked children overwrite their
environment, so they are recognised by their session: the browser's (Playwright starts
each browser as a session leader).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

#: Environment variable carrying a test's marker.
MARK_VARIABLE = "CHAOS_TEST_PROCESS_MARK"


#: Executable names of a Chromium browser: Debian's full browser, Playwright's builds and
#: the headless shell (whose process name the kernel cuts to 15 characters).
BROWSER_NAMES = frozenset({
    "chromium", "chrome", "headless_shell", "chromium-headless-shell", "chromium-headle",
})


def is_chromium(proc: psutil.Process) -> bool:
    """Whether ``proc`` is a Chromium process (browser or child)."""
    try:
        return proc.name() in BROWSER_NAMES or any(
            "chromium" in part for part in proc.cmdline()[:1]
        )
    except psutil.Error:
        return False


@dataclass
class Marked:
    """The processes carrying one marker, and the Chromium sessions seen among them."""

    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    sessions: set[int] = field(default_factory=set)

    @property
    def env(self) -> dict[str, str]:
        """The environment entry to give the processes to follow."""
        return {MARK_VARIABLE: self.mark}

    def processes(self) -> list[psutil.Process]:
        """Live marked processes plus everything in the sessions of marked browsers."""
        marked, others = [], []
        for proc in psutil.process_iter():
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                environ = proc.environ()
                if environ.get(MARK_VARIABLE) == self.mark:
                    marked.append(proc)
                    if is_chromium(proc):
                        self.sessions.add(_session(proc))
                else:
                    others.append(proc)
            except psutil.Error:
                continue
        in_sessions = []
        for proc in others:
            try:
                if self.sessions and _session(proc) in self.sessions:
                    in_sessions.append(proc)
            except psutil.Error:
                continue
        return marked + in_sessions

    def chromium(self) -> list[psutil.Process]:
        """The live Chromium processes among :meth:`processes` (crash handlers included)."""
        return [proc for proc in self.processes() if is_chromium(proc)]

    def browsers(self) -> list[psutil.Process]:
        """The live main browser processes (one per running engine)."""
        found = []
        for proc in self.chromium():
            try:
                if proc.name() in BROWSER_NAMES and not any(
                    arg.startswith("--type=") for arg in proc.cmdline()
                ):
                    found.append(proc)
            except psutil.Error:
                continue
        return found


def _session(proc: psutil.Process) -> int:
    try:
        return os.getsid(proc.pid)
    except OSError as exc:  # gone meanwhile
        raise psutil.NoSuchProcess(proc.pid) from exc


def zombies_of(parents: set[int]) -> list[psutil.Process]:
    """Zombie processes whose parent is one of ``parents``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE and proc.ppid() in parents:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()

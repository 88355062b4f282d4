"""CPU of a process tree, per kind of process (browser, renderers, GPU, network service, Python...).

A contender runs as a child process; :class:`TreeProfile` samples ``/proc`` of it and all
its descendants every :data:`SAMPLE_S` and keeps each process's last CPU time, so that the
total can be split by what each process is. Renderers live one context each and may exit
between two samples: what they spent after the last sample is what the kernel adds to
their parent's reaped-children time, which the whole-tree total (``RUSAGE_CHILDREN`` of
the contender, read after it exits) includes and the split shows as ``unsampled``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Final

import psutil

#: Seconds between two samples of the tree.
SAMPLE_S: Final = 0.1


def kind_of(name: str, cmdline: list[str]) -> str:
    """What a process of a contender's tree is, from its name and command line."""
    joined = " ".join(cmdline[:40])
    if "--type=renderer" in joined:
        return "renderers"
    if "--type=gpu-process" in joined:
        return "gpu"
    if "NetworkService" in joined:
        return "network service"
    if "--type=zygote" in joined:
        return "zygote"
    if "--type=" in joined:
        return "other chromium"
    if "chrom" in name or "headless" in name:
        return "browser"
    if name.startswith("node"):
        return "playwright driver"
    if "python" in name or "shot-scraper" in name or "celery" in name:
        return "python"
    if "redis" in name:
        return "redis"
    return name


@dataclass
class TreeProfile:
    """Per-process CPU seconds of the trees under ``pids`` since :meth:`start`, sampled in a
    thread (whose own CPU, :attr:`sampler_seconds`, is not the contenders' and is reported
    apart so that a profiled process can take it out of its own figures)."""

    pids: list[int]
    interval: float = SAMPLE_S
    baseline: dict[int, float] = field(default_factory=dict)
    last: dict[int, tuple[str, float]] = field(default_factory=dict)
    sampler_seconds: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeProfile:
        self.sample()
        self.baseline = {pid: seconds for pid, (_kind, seconds) in self.last.items()}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.thread_time()
            self.sample()
            self.sampler_seconds += time.thread_time() - started

    def sample(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        known = self.last.get(proc.pid)
                        kind = known[0] if known else kind_of(proc.name(), proc.cmdline())
                        times = proc.cpu_times()
                        self.last[proc.pid] = (kind, times.user + times.system)

    def by_kind(self) -> dict[str, float]:
        """CPU seconds per kind of process since :meth:`start` (as far as sampled)."""
        totals: dict[str, float] = {}
        for pid, (kind, seconds) in self.last.items():
            spent = seconds - self.baseline.get(pid, 0.0)
            totals[kind] = totals.get(kind, 0.0) + spent
        return totals


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A contender's process run to its end: wall time, whole-tree CPU and its split."""

    seconds: float
    cpu_seconds: float
    by_kind: dict[str, float]
    stdout: str
    stderr: str
    returncode: int


def run_profiled(args: list[str], *, env: dict[str, str] | None = None,
                 timeout: float = 900) -> ChildRun:
    """Run ``args`` to its end, profiling its process tree.

    Whole-tree CPU is ``RUSAGE_CHILDREN``'s difference (every descendant reaped on the way
    counts); the split by kind comes from the samples, the rest is ``unsampled``.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    profile = TreeProfile([process.pid]).start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        profile.stop()
        if process.poll() is None:
            process.kill()
            process.wait()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    split = profile.by_kind()
    split["unsampled"] = max(0.0, cpu - sum(split.values()))
    return ChildRun(seconds, cpu, split, stdout, stderr, process.returncode)


def own_cpu_seconds() -> float:
    """CPU seconds of this process so far."""
    times = os.times()
    return times.user + times.system

"""The real parts a benchmark runs on, and what it measures of them.

Processes are started the way the test suite starts them (``tests/servers.py`` helpers and
``tests/conftest.py``'s :class:`ProcessFactory`): a private redis-server, the API under
uvicorn, Celery workers. :func:`tree_cpu_seconds` and :func:`tree_memory` read CPU time and
memory of whole process trees (a worker with its pool children and Chromium), which stay
meaningful on a busy machine where wall-clock times do not.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from shared.constants import CAPTURE_QUEUE
from tests.conftest import ProcessFactory, base_env, wait_until_ready
from tests.servers import python_command, run_redis

#: Settings every benchmark process gets on top of the test suite's (production log format).
BENCH_ENV = {
    "SHOTLINE_LOG_FORMAT": "json",
    "SHOTLINE_LOG_LEVEL": "INFO",
    "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "1",
}


class BenchProcesses(ProcessFactory):
    """:class:`ProcessFactory` plus workers of any Celery app, pool and queue."""

    def celery_worker(
        self,
        *,
        app: str = "worker.app",
        pool: str = "prefork",
        concurrency: int = 2,
        queue: str = CAPTURE_QUEUE,
        **env: str,
    ) -> subprocess.Popen[bytes]:
        """A Celery worker, waited for until it reports ready."""
        process, log_path = self._spawn("worker", [
            *python_command("-m", "celery", "-A", app, "worker", "--pool", pool,
            "--concurrency", str(concurrency), "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue,
        )], env)
        wait_until_ready(process, log_path, "worker")
        return process

    def shotline_worker(
        self, *, pool: str | None = None, concurrency: int | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        """A worker as users run it (``shotline worker``): its pool and concurrency are the
        settings' (``WORKER_POOL``, ``WORKER_CONCURRENCY``) unless given here."""
        if pool is not None:
            env["SHOTLINE_WORKER_POOL"] = pool
        if concurrency is not None:
            env["SHOTLINE_WORKER_CONCURRENCY"] = str(concurrency)
        process, _ = self.cli_worker(**env)
        return process

    def api_process(self, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
        """The API under uvicorn: its base URL and its process.

        Keep-alive connections are kept open for 120 s (uvicorn's default is 5): on a loaded
        machine the load generator can be descheduled that long between two requests, and
        the server closing the connection as the next request goes out aborts the run with
        ``httpx.ReadError`` (seen at load average 25)."""
        base = self.api(**{"UVICORN_TIMEOUT_KEEP_ALIVE": "120", **env})
        return base, self.processes[-1]


@dataclass
class Stack:
    """A private Redis and the processes of one benchmark, stopped by :meth:`close`."""

    workdir: Path
    redis_url: str
    processes: BenchProcesses
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def redis(self) -> redis.Redis:
        """A plain client on the stack's Redis (for waiting on job records)."""
        client = redis.Redis.from_url(self.redis_url)
        self._stack.callback(client.close)
        return client

    def close(self) -> None:
        self.processes.stop_all()
        self._stack.close()


@contextlib.contextmanager
def stack(workdir: Path, **settings: str) -> Iterator[Stack]:
    """A redis-server of its own (no persistence, like the tests') and a process factory
    whose children get the test suite's settings, :data:`BENCH_ENV` and ``settings``."""
    workdir.mkdir(parents=True, exist_ok=True)
    with run_redis(workdir / "redis") as (_process, port):
        url = f"redis://127.0.0.1:{port}/0"
        env = {**base_env(url, workdir / "data"), **BENCH_ENV, **settings}
        env.pop("SHOTLINE_WORKER_CONCURRENCY", None)  # the production default, unless given
        env.update({k: v for k, v in settings.items() if k == "SHOTLINE_WORKER_CONCURRENCY"})
        factory = BenchProcesses(workdir, env)
        running = Stack(workdir, url, factory)
        try:
            yield running
        finally:
            running.close()


def _tree(pids: Iterable[int]) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                found[proc.pid] = proc
    return list(found.values())


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) the trees rooted at ``pids`` used so far, including
    children they already reaped (Chromium's renderers, closed with their contexts)."""
    total = 0.0
    for proc in _tree(pids):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


@dataclass(frozen=True, slots=True)
class TreeMemory:
    """Resident memory of a process tree, in MiB: Python processes and everything."""

    python_mb: float
    total_mb: float
    processes: int


def tree_memory(pid: int) -> TreeMemory:
    """RSS of the tree rooted at ``pid``: its Python processes, and all of it (Chromium too)."""
    python = total = 0
    procs = _tree([pid])
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            rss = proc.memory_info().rss
            total += rss
            if "python" in proc.name():
                python += rss
    return TreeMemory(python / 2**20, total / 2**20, len(procs))


def tree_pss_mb(pid: int) -> tuple[dict[str, float], int]:
    """PSS of the tree rooted at ``pid`` (shared pages split between their users: what the
    tree really costs) in MiB, by kind of process (``python``, ``node``: Playwright's
    driver, ``chromium``) and in ``total``; and its process count."""
    procs = _tree([pid])
    kinds = {"python": 0, "node": 0, "chromium": 0}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            name = proc.name()
            kind = ("python" if "python" in name else "node" if name.startswith("node")
                    else "chromium")
            kinds[kind] += proc.memory_full_info().pss
    found = {kind: round(value / 2**20, 1) for kind, value in kinds.items()}
    found["total"] = round(sum(kinds.values()) / 2**20, 1)
    return found, len(procs)


def rss_mb(pid: int) -> float:
    """Current RSS of one process, in MiB."""
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def peak_rss_mb(pid: int) -> float:
    """Peak RSS of one process so far (the kernel's high-water mark, VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")

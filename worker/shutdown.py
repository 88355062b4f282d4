"""Graceful worker shutdown: running captures may finish, but not forever.

On SIGTERM Celery starts a warm shutdown: it stops taking tasks and waits for the running
ones, however long they take. :func:`bound_warm_shutdown` puts a limit on that wait: once
``timeout`` seconds have passed with captures still running, it turns the warm shutdown
into a cold one (SIGQUIT), which cancels them; being acknowledged late, their messages go
back to the queue and another worker runs them (tasks not yet started are requeued in
either case).

Celery's own ``worker_soft_shutdown_timeout`` only applies to a cold shutdown (SIGQUIT, or
SIGTERM remapped with the ``REMAP_SIGTERM`` environment variable before Celery is imported)
and then always sleeps the whole timeout, even when the captures are done in a second;
this watcher ends the wait as soon as nothing runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("shotline.shutdown")

#: How often the watcher looks at the running tasks, in seconds.
POLL_SECONDS = 0.2


def active_tasks() -> int:
    """Tasks this Celery worker is running right now."""
    from celery.worker import state

    return len(state.active_requests)


def cold_shutdown() -> None:
    """Ask this worker process for a cold shutdown (cancel and requeue running tasks)."""
    os.kill(os.getpid(), signal.SIGQUIT)


#: ``prctl`` option: the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def leave_process_group() -> None:
    """Move this prefork pool child into a process group of its own, tied to its parent.

    A SIGTERM to the worker's whole process group (``kill -TERM -PGID``) reaches every
    process in it at once; a pool child would die of it mid-capture (billiard turns it
    into an exit), before the main process's warm shutdown could let the capture finish.
    Out of the group, the child gets only what the main process sends it: the end of the
    pool once its task is done, or SIGTERM by pid on a cold shutdown. Playwright's driver,
    started by the child, follows it (see also :mod:`worker.engines.driver_signals`).

    A SIGKILL to the group no longer reaches the child either: on Linux it asks the kernel
    for SIGKILL when its parent, the main process, dies (``PR_SET_PDEATHSIG``; the pool
    forks from the main thread), so a killed worker still takes its pool with it at once.
    """
    os.setpgid(0, 0)
    if sys.platform != "linux":
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("Could not tie the pool process to its parent.",
                    error=os.strerror(ctypes.get_errno()))
    elif os.getppid() != parent or parent == 1:  # the parent died before that
        os.kill(os.getpid(), signal.SIGKILL)


def cancel_then_cold_shutdown(cancel: Callable[[], int]) -> Callable[[], None]:
    """The escalation of a worker whose captures run in this very process (threads pool):
    ``cancel()`` them first (their tasks hand their messages back to the queue), then
    :func:`cold_shutdown`. A threads pool's cold shutdown would otherwise wait for its
    running threads; a prefork main process has none to cancel."""

    def escalate() -> None:
        cancelled = cancel()
        if cancelled:
            log.warning("captures cancelled for shutdown; their messages go back to the queue",
                        cancelled=cancelled)
        cold_shutdown()

    return escalate


def bound_warm_shutdown(
    timeout: float,
    *,
    active: Callable[[], int] = active_tasks,
    escalate: Callable[[], None] = cold_shutdown,
) -> threading.Thread:
    """Start a watcher that escalates to ``escalate()`` if tasks still run after ``timeout``."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        running = active()
        log.info("warm shutdown: waiting for running captures", running=running,
                 timeout_s=timeout)
        while running and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            running = active()
        if running:
            log.warning("shutdown timeout reached; cancelling and requeueing running captures",
                        running=running, timeout_s=timeout)
            escalate()

    thread = threading.Thread(target=watch, name="shotline-shutdown", daemon=True)
    thread.start()
    return thread

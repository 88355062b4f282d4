"""Host name lookups of one capture: each host resolved once, lookups bounded in number and time.

A page opens many connections to the same hosts (a docs page: a dozen to its own host; a
news page: hundreds to fifty third parties). The egress gate checks and pins every one of
them (:mod:`worker.engines.egress`), but resolving the name again for each connection only
costs: a dead third-party host made its page wait out the resolver's timeout once per
connection (234 lookups for 54 hosts on one saved news page), on Python's default thread
pool (6 threads on 2 cores), shared with everything else the worker runs in threads.

:class:`HostLookups` is the memory of one capture (one gate): the first connection to a
host resolves it, every later one, and any that arrive meanwhile, gets the same answer,
addresses or failure. Reusing the answer keeps the rebinding defence intact, and tighter:
the gate still checks every address on every connection and connects only to a checked
address, and a capture never sees a second answer for a name. A new capture asks again.

Bounds, so that dead hosts cost no more than they do in a plain browser: at most
:data:`LOOKUPS_AT_ONCE` lookups at once per capture, each given :data:`LOOKUP_TIMEOUT_S`
(past it the host counts as unresolvable for the rest of the capture), in a thread pool of
the worker's own (:data:`LOOKUP_THREADS`) rather than the event loop's default executor.
A lookup that timed out keeps its thread until the system resolver gives up; the pool's
size bounds how many such threads a worker may hold.

Hand-written rather than an async DNS library (aiodns/c-ares): the gate must resolve
exactly as the URL policy's own check does (``getaddrinfo``: ``/etc/hosts``, nsswitch),
and what is needed on top is a memo and two bounds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Iterable
from typing import Final

from shared.url_parsing import IPAddress
from shared.url_policy import AsyncResolver, resolve_host

#: Lookups one capture may have in flight at once (Chromium's own resolver runs 6 system
#: lookups at once for the whole browser).
LOOKUPS_AT_ONCE: Final = 8

#: Seconds one lookup may take; past it the host is unresolvable for this capture. The
#: system resolver's own timeout is 5 s per attempt (``resolv.conf``), twice by default.
LOOKUP_TIMEOUT_S: Final = 3.0

#: Threads of the worker's lookup pool (shared by every capture of the process). A thread
#: blocked on a lookup costs no CPU; the bound keeps timed-out lookups from piling up.
LOOKUP_THREADS: Final = 32

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _lookup_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=LOOKUP_THREADS, thread_name_prefix="shotline-dns"
            )
        return _executor


async def resolve_in_pool(host: str, port: int) -> list[IPAddress]:
    """``getaddrinfo`` (:func:`~shared.url_policy.resolve_host`) in the lookup pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _lookup_executor(), functools.partial(resolve_host, host, port)
    )


class LookupTimedOut(OSError):
    """Raised when a host's lookup took longer than the capture gives it."""


class HostLookups:
    """One capture's lookups: each host resolved once with ``resolver`` (default
    :func:`resolve_in_pool`), ``at_once`` at a time, each within ``timeout`` seconds.

    Its :meth:`resolve` is an :data:`~shared.url_policy.AsyncResolver`: pass it to
    :meth:`~shared.url_policy.UrlPolicy.acheck_host`, which still checks every address.
    """

    def __init__(
        self,
        resolver: AsyncResolver | None = None,
        *,
        at_once: int = LOOKUPS_AT_ONCE,
        timeout: float = LOOKUP_TIMEOUT_S,
    ) -> None:
        self._resolver = resolver or resolve_in_pool
        self._slots = asyncio.Semaphore(at_once)
        self._timeout = timeout
        self._answers: dict[str, asyncio.Future[tuple[IPAddress, ...]]] = {}
        #: Lookups actually made (one per host asked for).
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """The addresses of ``host``: its first answer in this capture (failures included).

        Raises:
            OSError: the host does not resolve, or its lookup timed out
                (:class:`LookupTimedOut`).
        """
        answer = self._answers.get(host)
        if answer is None:
            self.lookups += 1
            answer = self._answers[host] = asyncio.ensure_future(self._lookup(host, port))
            answer.add_done_callback(_retrieve)
        # Shielded: a connection cut while waiting must not cancel the others' answer.
        return await asyncio.shield(answer)

    async def _lookup(self, host: str, port: int) -> tuple[IPAddress, ...]:
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout):
                    found: Iterable[IPAddress] = await self._resolver(host, port)
            except TimeoutError as exc:
                raise LookupTimedOut(
                    f"looking up {host} took longer than {self._timeout:g} s"
                ) from exc
            return tuple(found)

    def close(self) -> None:
        """Cancel the lookups still running (their threads finish on their own)."""
        for answer in self._answers.values():
            answer.cancel()


def _retrieve(answer: asyncio.Future[tuple[IPAddress, ...]]) -> None:
    # A failed lookup nobody waits for any more must not log "exception never retrieved".
    if not answer.cancelled():
        answer.exception()

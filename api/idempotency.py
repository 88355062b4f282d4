"""``Idempotency-Key`` on POST requests (Stripe's semantics, the IETF draft's statuses).

The first request with a key (per API key) takes a lock in Redis; its response is stored
for ``IDEMPOTENCY_TTL_SECONDS`` (24 h) and replayed to every retry with the same body
(``Idempotent-Replayed: true``). The same key with a different body → 422; a retry while
the first request is still being handled → 409. Responses that a retry may well change
(5xx, 401, 409, 429) are not stored: the lock is released and the retry runs anew.

Two parts: the :func:`begin` step runs as a route dependency (after authentication, so the
scope is the API key), and :class:`IdempotencyMiddleware` stores the response as it streams
out. A response too large to keep (a synchronous capture's image) is stored without its
body but with its job id, and replayed by streaming that job's result again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.constants import IDEMPOTENCY_PREFIX
from shared.errors import IdempotencyConflict, IdempotencyKeyReused, InvalidRequest
from shared.scripts import ScriptCall, load_script, run_scripts
from shared.status_store import redis_errors

log = structlog.get_logger("shotline.api")

HEADER = "Idempotency-Key"
#: Header naming the job behind a response (used to replay responses kept without a body).
JOB_ID_HEADER = "X-Shotline-Job-Id"
#: Longest response body kept for replay.
MAX_STORED_BODY = 256 * 1024
#: How long a first request may hold its key before a retry may take over (crashed API).
LOCK_SECONDS = 300
_HEADERS_KEPT = ("content-type", "location", "x-shotline-job-id", "x-shotline-cached")
_NOT_STORED = {401, 409, 429}
_STATE_KEY = "idempotency"


@dataclass(frozen=True, slots=True)
class Ticket:
    """The lock held by the first request with a key, until its response is stored."""

    record_key: str
    token: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """A request's ``Idempotency-Key`` lookup, to send (``call``), then settle."""

    ticket: Ticket
    fingerprint: str
    call: ScriptCall


class Replay(Exception):
    """Raised by the dependency to answer with a stored response."""

    def __init__(self, response: Response) -> None:
        super().__init__("replay")
        self.response = response


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What "the same request" means: method, path and body (JSON compared by content)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), canonical)).hexdigest()


def _valid_key(value: str) -> bool:
    return 1 <= len(value) <= 255 and value.isascii() and value.isprintable()


class IdempotencyStore:
    """Idempotency records in Redis."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._begin = load_script(redis, __name__, "idempotency_begin")
        self._finish = load_script(redis, __name__, "idempotency_finish")

    async def begin(self, request: Request, *, owner: str) -> None:
        """The dependency step of a POST. Without the header: nothing. Otherwise take the key
        (the middleware then stores the response), or raise :class:`Replay`,
        :class:`IdempotencyConflict` (409) or :class:`IdempotencyKeyReused` (422).

        A stored response without a body (too large) sets ``request.state.replay_job_id``
        for the route to answer from that job again. One round trip; :meth:`prepare` and
        :meth:`settle` let the caller send it with other scripts (:func:`api.deps.admit`).
        """
        lookup = await self.prepare(request, owner=owner)
        if lookup is None:
            return
        with redis_errors():
            [raw] = await run_scripts(self.redis, [lookup.call])
        self.settle(request, lookup, raw)

    async def prepare(self, request: Request, *, owner: str) -> Lookup | None:
        """The lookup of the request's ``Idempotency-Key`` (taking it when free), not sent
        yet; ``None`` without the header. :class:`InvalidRequest` for a malformed key."""
        key = request.headers.get(HEADER)
        if key is None:
            return None
        if not _valid_key(key):
            raise InvalidRequest(f"{HEADER} must be 1-255 printable ASCII characters.")
        digest = hashlib.sha256(key.encode()).hexdigest()
        record_key = f"{IDEMPOTENCY_PREFIX}{owner}:{digest}"
        body = await request.body()
        expected = fingerprint(request.method, request.url.path, body)
        ticket = Ticket(record_key=record_key, token=secrets.token_hex(16))
        return Lookup(ticket=ticket, fingerprint=expected, call=ScriptCall(
            self._begin, [record_key], [expected, ticket.token, LOCK_SECONDS * 1000]))

    @staticmethod
    def took(raw: Any) -> bool:
        """Whether the lookup's answer ``raw`` says it took the key."""
        return not raw

    def settle(self, request: Request, lookup: Lookup, raw: Any) -> None:
        """Act on the lookup's answer ``raw`` (see :meth:`begin`)."""
        if self.took(raw):
            request.state.idempotency = lookup.ticket
            return
        record = {k.decode(): v for k, v in zip(raw[::2], raw[1::2], strict=True)}
        if record["fingerprint"].decode() != lookup.fingerprint:
            raise IdempotencyKeyReused(
                f"This {HEADER} was used with a different request; use a new key."
            )
        if record["state"] != b"done":
            raise IdempotencyConflict(
                f"The first request with this {HEADER} is still being handled; retry later."
            )
        headers: dict[str, str] = json.loads(record["headers"])
        log.info("idempotent request replayed", status=int(record["status"]))
        if "body" not in record:
            request.state.replay_job_id = headers.get(JOB_ID_HEADER.lower())
            return
        headers["Idempotent-Replayed"] = "true"
        raise Replay(Response(content=record["body"], status_code=int(record["status"]),
                              headers=headers))

    async def finish(self, ticket: Ticket, status: int, headers: dict[str, str],
                     body: bytes | None) -> None:
        """Store the response of the ticket's request, or release the key."""
        if status >= 500 or status in _NOT_STORED:
            args: list[Any] = [ticket.token, "release"]
        else:
            args = [ticket.token, "store", self.ttl_seconds,
                    "status", status, "headers", json.dumps(headers)]
            if body is not None:
                args += ["body", body]
        with redis_errors():
            await self._finish(keys=[ticket.record_key], args=args)

    async def abandon(self, ticket: Ticket) -> None:
        """Release the key of a request that ended without a response."""
        with redis_errors():
            await self._finish(keys=[ticket.record_key], args=[ticket.token, "release"])


class IdempotencyMiddleware:
    """Stores the response of every request that took an idempotency key, as it streams out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status = 0
        headers: dict[str, str] = {}
        chunks: list[bytes] | None = None  # None: nothing to keep (no ticket, or too large)
        size = 0
        recorded = False

        async def record() -> None:
            # Before the last byte goes out: a client that retries the moment it has the whole
            # response must find it stored, not "still in flight".
            nonlocal recorded
            recorded = True
            ticket = _ticket_of(scope)
            if isinstance(ticket, Ticket):
                store = _store_of(scope)
                body = b"".join(chunks) if chunks is not None else None
                if body is None and JOB_ID_HEADER.lower() not in headers:
                    await store.abandon(ticket)  # nothing to replay it from
                else:
                    await store.finish(ticket, status, headers, body)

        async def capture(message: Message) -> None:
            nonlocal status, chunks, size
            if message["type"] == "http.response.start":
                # The dependency has run by now: only a ticket holder's response is kept.
                if isinstance(_ticket_of(scope), Ticket):
                    chunks = []
                status = message["status"]
                for name, value in message.get("headers", []):
                    decoded = name.decode("latin-1").lower()
                    if decoded in _HEADERS_KEPT:
                        headers[decoded] = value.decode("latin-1")
            elif message["type"] == "http.response.body" and chunks is not None:
                body = message.get("body", b"")
                size += len(body)
                if size > MAX_STORED_BODY:
                    chunks = None
                else:
                    chunks.append(body)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await record()
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await self._abandon(scope)
            raise
        if not recorded:
            await record()

    async def _abandon(self, scope: Scope) -> None:
        ticket = _ticket_of(scope)
        if isinstance(ticket, Ticket):
            try:
                await _store_of(scope).abandon(ticket)
            except Exception:
                log.warning("could not release an idempotency key")


def _ticket_of(scope: Scope) -> object:
    return scope.get("state", {}).get(_STATE_KEY)


def _store_of(scope: Scope) -> IdempotencyStore:
    store: IdempotencyStore = scope["app"].state.services.idempotency
    return store

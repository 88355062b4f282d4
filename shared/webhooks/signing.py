"""Standard Webhooks signatures: ``whsec_`` secrets, signing and verifying.

The signed content is ``"<webhook-id>.<webhook-timestamp>.<body>"`` (the exact body bytes);
the signature is ``v1,`` + base64 of its HMAC-SHA256 under the secret's decoded bytes. While
a secret is being rotated, every active secret signs and the signatures are sent
space-separated, so a receiver holding either secret verifies.

The signatures themselves are computed by the ``standardwebhooks`` package (the spec's
reference library). Around it this module keeps what the library does not offer: strict
secret checks for Shotline's settings, several signing keys at once, and a verifier with a
configurable tolerance and clock whose errors are :class:`WebhookVerificationError`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from standardwebhooks.webhooks import Webhook

from shared.errors import WebhookVerificationError

SECRET_PREFIX: Final = "whsec_"
#: Bounds of a secret's decoded length, as the Standard Webhooks spec recommends.
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
#: How far a webhook's timestamp may be from the receiver's clock, in seconds.
DEFAULT_TOLERANCE_SECONDS: Final = 5 * 60

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"


def generate_secret(nbytes: int = 32) -> str:
    """A new signing secret: ``whsec_`` + base64 of ``nbytes`` random bytes."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def parse_secret(secret: str, *, strict: bool = False) -> bytes:
    """The key bytes of ``secret`` (``whsec_`` + base64); :class:`ValueError` if malformed.

    ``strict`` (used for Shotline's own settings) also requires the ``whsec_`` prefix and
    24-64 bytes; otherwise the prefix is optional, as in other Standard Webhooks libraries.
    """
    body = secret.strip()
    if body.startswith(SECRET_PREFIX):
        body = body[len(SECRET_PREFIX):]
    elif strict:
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    if strict and not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>`` of ``body`` under ``key`` (the ``standardwebhooks`` library's)."""
    return Webhook(key).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)


def sign(msg_id: str, timestamp: int, body: bytes, keys: Sequence[bytes]) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated."""
    if not keys:
        raise ValueError("signing needs at least one key")
    return " ".join(_signature(key, msg_id, timestamp, body) for key in keys)


def signature_headers(
    msg_id: str, timestamp: int, body: bytes, keys: Sequence[bytes]
) -> dict[str, str]:
    """The three Standard Webhooks headers for sending ``body`` at ``timestamp``."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(msg_id, timestamp, body, keys),
    }


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its parsed JSON body.

    ``body`` must be the raw request body, before any JSON parsing; ``headers`` any mapping
    of the request headers (names in any case); ``secret`` the ``whsec_...`` secret. Raises
    :class:`shared.errors.WebhookVerificationError` when a header is missing, the timestamp
    is more than ``tolerance`` seconds away from ``now``, or no signature matches (compared
    in constant time). Receivers should also drop a ``webhook-id`` they have seen before.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    lowered = {str(name).lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    stamp = lowered.get(TIMESTAMP_HEADER)
    signatures = lowered.get(SIGNATURE_HEADER)
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (stamp.isascii() and stamp.isdigit()):
        raise WebhookVerificationError("webhook-timestamp is not a Unix time in seconds")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance window")
    try:
        key = parse_secret(secret)
    except ValueError as exc:
        raise WebhookVerificationError(f"unusable secret: {exc}") from exc
    expected = _signature(key, msg_id, timestamp, raw).encode("ascii")
    for candidate in signatures.split():
        if hmac.compare_digest(expected, candidate.encode("utf-8", "replace")):
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise WebhookVerificationError("the body is not JSON") from exc
    raise WebhookVerificationError("no signature matches the secret")

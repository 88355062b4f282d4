"""Verify Shotline's webhooks in your receiver (any Standard Webhooks library works too).

    from shotline.webhooks import WebhookVerificationError, verify

    event = verify(request_body_bytes, request_headers, "whsec_...")
    if event["type"] == "job.succeeded":
        download(event["data"]["result"]["url"])

:func:`verify` checks the ``webhook-signature`` (HMAC-SHA256 over ``id.timestamp.body``, in
constant time, any of several space-separated signatures during a secret rotation) and
that ``webhook-timestamp`` is within five minutes, then returns the parsed JSON body. Keep
the ``webhook-id`` values you have handled and drop repeats: retries reuse the id.
"""

from shared.errors import WebhookVerificationError
from shared.webhooks.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    generate_secret,
    parse_secret,
    sign,
    signature_headers,
    verify,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "WebhookVerificationError",
    "generate_secret",
    "parse_secret",
    "sign",
    "signature_headers",
    "verify",
]

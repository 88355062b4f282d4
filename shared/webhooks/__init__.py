"""Webhooks the Standard Webhooks way: signed job events, retried, logged per attempt.

``signing`` (secrets, signatures, :func:`verify`), ``payload`` (event types, ids, bodies),
``secrets`` (which secret signs a job), ``retry`` (what an answer means, when to retry),
``store`` (deliveries in Redis), ``delivery`` (one attempt, start to end).
"""

from shared.webhooks.signing import generate_secret, parse_secret, sign, verify

__all__ = ["generate_secret", "parse_secret", "sign", "verify"]

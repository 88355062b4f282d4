"""Webhooks the Standard Webhooks way: signed job and batch events, retried, logged per attempt.

``signing`` (secrets, signatures, :func:`verify`), ``payload`` (event types, ids, bodies),
``subjects`` (what a delivery is about: a job or a batch), ``secrets`` (which secret signs
it), ``retry`` (what an answer means, when to retry), ``store`` (deliveries in Redis),
``delivery`` (one attempt, start to end), ``listener`` (scheduling finished jobs and batches).
"""

from shared.webhooks.signing import generate_secret, parse_secret, sign, verify

__all__ = ["generate_secret", "parse_secret", "sign", "verify"]

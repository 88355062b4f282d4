"""Who a request or a scheduled run acts for: an API key, or anonymous.

The API builds one per request (:func:`api.auth.authenticate`); the workers' monitor
scheduler builds one per scheduled run, to charge the same monthly quota
(:mod:`shared.quota`).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.apikeys import ApiKey
from shared.constants import ANONYMOUS_OWNER


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an API key, or anonymous (no keys yet, or auth off)."""

    key: ApiKey | None
    #: Who rate limits count against: the key id, or the client address when anonymous.
    client: str

    @property
    def key_id(self) -> str | None:
        """The key's id; ``None`` when anonymous (stored as the jobs' ``api_key_id``)."""
        return self.key.id if self.key else None

    @property
    def owner(self) -> str:
        """The name work is scoped to (cache, idempotency keys)."""
        return self.key.id if self.key else ANONYMOUS_OWNER

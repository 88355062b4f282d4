"""Who is calling: the API key of a request, per the ``SHOTLINE_AUTH`` mode.

- ``auto`` (default): a key is required as soon as one exists (``shotline dev`` creates
  one); before the first key the API is single-tenant and open, as on a fresh install.
- ``required``: always a key. ``off``: never (a trusted network); everything is anonymous.

A key comes as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. An empty header
counts as none (``-H "Authorization: Bearer $UNSET"``).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from shared.apikeys import KeyStore
from shared.errors import AuthenticationFailed
from shared.principal import Principal
from shared.settings import Settings


def credential(connection: HTTPConnection) -> str | None:
    """The API key the request carries, if any."""
    authorization = connection.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = connection.headers.get("x-api-key", "").strip()
    return api_key or None


def anonymous(connection: HTTPConnection) -> Principal:
    """The anonymous caller, rate limited by client address."""
    address = connection.client.host if connection.client else "unknown"
    return Principal(key=None, client=f"ip:{address}")


async def authenticate(settings: Settings, keys: KeyStore, connection: HTTPConnection) -> Principal:
    """The caller of ``connection``; :class:`AuthenticationFailed` when a key is needed and
    missing, unknown or revoked."""
    if settings.auth == "off":
        return anonymous(connection)
    token = credential(connection)
    if token is not None:
        record = await keys.authenticate(token)
        return Principal(key=record, client=f"key:{record.id}")
    if settings.auth == "required" or await keys.any_exist():
        raise AuthenticationFailed(
            "An API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'."
        )
    return anonymous(connection)

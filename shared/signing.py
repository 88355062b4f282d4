"""HMAC-signed, time-limited download links for objects in local storage.

A link carries ``expires`` (a Unix time in whole seconds) and ``signature``: the hex
HMAC-SHA256, under the server's signing key, of the object key and that expiry. Whoever
holds a link can fetch the object until it expires; changing the key or the expiry breaks
the signature.

Signed render links (``GET /v1/render``) work the same way with a customer's key: the
signature covers the whole canonical query under that API key's signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode

from shared.errors import InvalidSignature

#: Prefix of every signed message, so that these signatures mean nothing elsewhere.
_PURPOSE = "shotline.download.v1"


def _message(key: str, expires: int) -> bytes:
    # Unambiguous: the purpose contains no newline and ``expires`` is digits only, so the
    # key is whatever lies between the first and the last newline.
    return f"{_PURPOSE}\n{key}\n{expires}".encode()


def sign_download(signing_key: bytes, key: str, expires: int) -> str:
    """The hex signature letting anyone download ``key`` until Unix time ``expires``."""
    return hmac.new(signing_key, _message(key, expires), hashlib.sha256).hexdigest()


def parse_expires(expires: int | str) -> int:
    """``expires`` as a non-negative integer; :class:`InvalidSignature` if it is not one.

    Strings must be written as :func:`sign_download`'s callers write them: plain decimal
    digits, no sign, no leading zero, no spaces.
    """
    if isinstance(expires, str):
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            raise InvalidSignature("The download link's expiry is malformed.")
        value = int(expires)
        if str(value) != expires:
            raise InvalidSignature("The download link's expiry is malformed.")
    else:
        value = expires
    if value < 0:
        raise InvalidSignature("The download link's expiry is malformed.")
    return value


def verify_download(
    signing_key: bytes,
    key: str,
    expires: int | str,
    signature: str,
    *,
    now: float | None = None,
) -> None:
    """Check a download link for ``key``; raise :class:`InvalidSignature` unless it is valid.

    ``expires`` and ``signature`` may come straight from the query string. The signature is
    compared in constant time; a link is refused once ``now`` (default: the current time)
    reaches its expiry.
    """
    expiry = parse_expires(expires)
    expected = sign_download(signing_key, key, expiry)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise InvalidSignature("The download link's signature does not match.")
    current = time.time() if now is None else now
    if current >= expiry:
        raise InvalidSignature("The download link has expired.")


# --- Signed render links (GET /v1/render) ---------------------------------------------

#: Prefix of render-link signatures, so they mean nothing elsewhere.
_RENDER_PURPOSE = "shotline.render.v1"
#: Query parameters that carry the signature itself rather than capture options.
RENDER_SIGNATURE_PARAM = "signature"


def canonical_render_query(params: Sequence[tuple[str, str]]) -> str:
    """The string a render link signs: every parameter but ``signature``, percent-encoded
    (RFC 3986, nothing left unescaped), sorted by name then value, joined with ``&``."""
    pairs = sorted(
        (quote(name, safe=""), quote(value, safe=""))
        for name, value in params
        if name != RENDER_SIGNATURE_PARAM
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def sign_render(secret: str, params: Sequence[tuple[str, str]]) -> str:
    """The hex HMAC-SHA256, under a key's signing secret, of a render link's query."""
    message = f"{_RENDER_PURPOSE}\n{canonical_render_query(params)}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_render(
    secret: str, params: Sequence[tuple[str, str]], *, now: float | None = None
) -> None:
    """Check a render link's ``signature`` and ``expires`` (Unix seconds, required);
    :class:`InvalidSignature` unless it is intact and current."""
    given = [value for name, value in params if name == RENDER_SIGNATURE_PARAM]
    expires = [value for name, value in params if name == "expires"]
    if len(given) != 1 or len(expires) != 1:
        raise InvalidSignature("A render link needs exactly one 'expires' and one 'signature'.")
    expiry = parse_expires(expires[0])
    expected = sign_render(secret, params)
    if not hmac.compare_digest(expected.encode(), given[0].encode("utf-8", "replace")):
        raise InvalidSignature("The render link's signature does not match.")
    if (time.time() if now is None else now) >= expiry:
        raise InvalidSignature("The render link has expired.")


def render_link(
    base_url: str, *, key_id: str, secret: str, expires: int, options: Mapping[str, object]
) -> str:
    """A signed ``/v1/render`` URL for ``options`` (booleans as ``true``/``false``)."""
    params: list[tuple[str, str]] = [
        (name, ("true" if value else "false") if isinstance(value, bool) else str(value))
        for name, value in options.items()
    ]
    params += [("key_id", key_id), ("expires", str(expires))]
    params.append((RENDER_SIGNATURE_PARAM, sign_render(secret, params)))
    return f"{base_url.rstrip('/')}/v1/render?{urlencode(params, quote_via=quote)}"

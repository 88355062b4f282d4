"""Signed render links: ``GET /v1/render?url=…&…&key_id=…&expires=…&signature=…``.

The query carries the capture options (the fields of ``POST /v1/screenshots``, as strings)
plus ``key_id``, ``expires`` (Unix seconds) and ``signature``: the hex HMAC-SHA256, under
the key's *signing secret*, of the canonical query (:func:`shared.signing.sign_render`).
The link can sit in an ``<img>`` tag: it proves the key holder made it without containing
the key. The signing secret is its own (not the webhook secret), so either can be rotated
or leaked alone.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.auth import Principal
from api.services import Services
from shared.apikeys import ApiKey
from shared.errors import ApiKeyNotFound, InvalidSignature
from shared.jobs import ScreenshotRequest
from shared.signing import RENDER_SIGNATURE_PARAM, verify_render

#: Query parameters that are not capture options.
LINK_PARAMS = frozenset({"key_id", "expires", RENDER_SIGNATURE_PARAM})


async def verify_link(services: Services, params: list[tuple[str, str]]) -> Principal:
    """The key that signed this query; :class:`InvalidSignature` (403) when the link is
    tampered with, expired, or its key unknown or revoked."""
    key_ids = [value for name, value in params if name == "key_id"]
    if len(key_ids) != 1:
        raise InvalidSignature("A render link needs exactly one 'key_id'.")
    try:
        record: ApiKey = await services.keys.get(key_ids[0])
    except ApiKeyNotFound:
        raise InvalidSignature("The render link's key does not exist.") from None
    verify_render(record.signing_secret, params)
    if not record.active:
        raise InvalidSignature("The render link's key has been revoked.")
    return Principal(key=record, client=f"key:{record.id}")


def render_request(params: list[tuple[str, str]]) -> ScreenshotRequest:
    """The capture a verified link asks for; 422 naming the field when it is invalid."""
    options: dict[str, str] = {}
    for name, value in params:
        if name in LINK_PARAMS:
            continue
        if name in options:
            raise RequestValidationError([{
                "loc": ("query", name), "msg": "given more than once", "type": "value_error",
            }])
        options[name] = value
    try:
        return ScreenshotRequest.model_validate(options)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("query", *err["loc"])} for err in exc.errors()]
        ) from None

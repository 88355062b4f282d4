"""Signed render links: ``GET /v1/render?url=…&…&key_id=…&expires=…&signature=…``.

The query carries the capture options (the fields of ``POST /v1/screenshots``, as strings)
plus ``key_id``, ``expires`` (Unix seconds) and ``signature``: the hex HMAC-SHA256, under
the key's *signing secret*, of the canonical query (:func:`shared.signing.sign_render`).
The link can sit in an ``<img>`` tag: it proves the key holder made it without containing
the key. The signing secret is its own (not the webhook secret), so either can be rotated
or leaked alone.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.services import Services
from shared.apikeys import ApiKey
from shared.errors import ApiKeyNotFound, InvalidSignature
from shared.jobs import ScreenshotRequest
from shared.principal import Principal
from shared.signing import RENDER_SIGNATURE_PARAM, verify_render

#: Query parameters that are not capture options.
LINK_PARAMS = frozenset({"key_id", "expires", RENDER_SIGNATURE_PARAM})
#: Request fields of inline documents, left out of the links' documented parameters.
DOCUMENT_FIELDS = frozenset({"html", "base_url", "markdown"})
#: JSON Schema types a query-string value can carry.
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})


def link_parameters() -> list[dict[str, Any]]:
    """The OpenAPI ``parameters`` of ``GET /v1/render``: the link's own three and every
    capture option a query string can carry (one value, not a list or an object).

    Documented rather than declared as typed ``Query`` parameters on purpose: FastAPI would
    validate those before the handler runs, so a tampered link with a bad option would get
    422 instead of 403, and the values FastAPI parsed would not be the exact strings the
    signature covers. The handler keeps reading the raw query (verify, then
    :func:`render_request`); this only describes it. Derived from
    :class:`ScreenshotRequest`, so a new capture option appears here by itself.
    """
    schema = ScreenshotRequest.model_json_schema()
    defs = schema.get("$defs", {})
    # A link renders a page by its address: url is what it needs, and no document fits in one.
    required = set(schema.get("required", ())) | {"url"}
    params: list[dict[str, Any]] = [
        _query("key_id", "The id of the API key whose signing secret signed the link.",
               {"type": "string"}),
        _query("expires", "When the link stops working, in Unix seconds (covered by the"
               " signature).", {"type": "integer"}),
        _query(RENDER_SIGNATURE_PARAM, "Hex HMAC-SHA256, under the key's signing secret, of"
               " every other parameter sorted and percent-encoded.", {"type": "string"}),
    ]
    for name, prop in schema["properties"].items():
        option = _inline(prop, defs)
        if _is_scalar(option) and name not in DOCUMENT_FIELDS:
            description = option.pop("description", None) or ""
            params.append(_query(name, description, option, required=name in required))
    return params


def _query(name: str, description: str, schema: dict[str, Any], *,
           required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` to ``$defs`` replaced by the definition itself."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline({**defs[ref.removeprefix("#/$defs/")],
                            **{k: v for k, v in node.items() if k != "$ref"}}, defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def _is_scalar(schema: dict[str, Any]) -> bool:
    """Whether one query-string value can satisfy ``schema`` (``null`` aside)."""
    if "anyOf" in schema:
        members = [m for m in schema["anyOf"] if m.get("type") != "null"]
        return bool(members) and all(_is_scalar(m) for m in members)
    return schema.get("type") in _SCALAR_TYPES


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

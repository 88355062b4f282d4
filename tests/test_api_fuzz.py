"""Schemathesis against the running API's own ``/openapi.json``: no input makes it answer 5xx.

Every operation gets schema-conforming and schema-violating requests (bounded: the whole
module takes well under a minute). Every answer must be below 500, and every 4xx must
have the API's one JSON error shape. Capture URLs the fuzzer makes valid are pinned to
IP literals, so that fuzzing never sends DNS lookups of made-up names anywhere (and no
request waits for a capture: no worker runs here).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import TypeAdapter, ValidationError
from schemathesis.generation.modes import GenerationMode

from api.app import create_app
from shared.jobs import HttpUrlStr
from shared.settings import Settings
from tests.conftest import ProcessFactory

#: Where valid capture URLs are pointed: allowed in tests (202) or refused (422).
PINNED_URLS = ("http://127.0.0.1:9/page", "http://192.0.2.1/page")

_url_adapter: TypeAdapter[str] = TypeAdapter(HttpUrlStr)


def own_openapi() -> dict[str, Any]:
    """The API's OpenAPI document, built the way the running API builds it."""
    return create_app(Settings(_env_file=None)).openapi()


# Built at collection (schemathesis' lazy fixture schemas do not work with this pytest);
# test_the_live_api_serves_this_very_document checks it is what /openapi.json serves.
schema = schemathesis.openapi.from_dict(own_openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module")
def api_base(module_processes: ProcessFactory) -> str:
    return module_processes.api()


def test_the_live_api_serves_this_very_document(api_base: str) -> None:
    served = httpx.get(f"{api_base}/openapi.json", timeout=30).raise_for_status().json()
    assert served == own_openapi()


def pin_urls(value: Any, *, refused_only: bool = False) -> Any:
    """``value`` with every string a capture or webhook URL check would accept (and so
    resolve) pointed at an IP literal; invalid strings stay, to be refused as they are.

    ``refused_only`` pins to the refused address only: the synchronous endpoint then answers
    at once instead of waiting for a capture no worker here will make.
    """
    if isinstance(value, dict):
        return {key: pin_urls(item, refused_only=refused_only) for key, item in value.items()}
    if isinstance(value, list):
        return [pin_urls(item, refused_only=refused_only) for item in value]
    if not isinstance(value, str):
        return value
    try:
        _url_adapter.validate_python(value)
    except ValidationError:
        return value
    return PINNED_URLS[-1] if refused_only else PINNED_URLS[len(value) % len(PINNED_URLS)]


#: uvicorn's answer to a request it cannot parse, before any application code runs.
UVICORN_BAD_REQUEST = "Invalid HTTP request received."


def _refused_by_the_http_server(response: Any) -> bool:
    """A request line too long for the HTTP server (llhttp's 80 KiB head, through uvicorn):
    the fuzzer fills each of ``/v1/render``'s query options up to its bound (``css`` and
    ``js`` take 100,000 characters), which no URL can carry. Not the API's answer to judge."""
    return (response.status_code == 400 and response.text == UVICORN_BAD_REQUEST
            and len(response.request.url) > 16 * 1024)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_the_api_fail(api_base: str, case: Any) -> None:
    case.body = pin_urls(case.body, refused_only=case.path.endswith("/sync"))
    if isinstance(case.query, dict):
        case.query = pin_urls(case.query, refused_only=True)
    response = case.call(base_url=api_base, timeout=30)
    if _refused_by_the_http_server(response):
        return
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error", "message", "request_id"}, body

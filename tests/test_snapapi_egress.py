"""The SnapAPI engine talks to its configured base URL and nowhere else.

Neither a redirect from it nor proxy variables in the environment can send the engine to
another address: a canary standing where they point counts zero connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shared.errors import EngineRejected
from shared.jobs import CaptureOptions
from tests.canary import Canary
from tests.fakes.snapapi_server import SnapApiStandIn
from worker.engines.base import Capture
from worker.engines.snapapi import SnapApiEngine

API_KEY = "sk_test_egress"


@pytest.fixture(scope="module")
def snap() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def canary(snap: SnapApiStandIn) -> Iterator[Canary]:
    snap.reset()
    with Canary() as running:
        yield running
    assert running.hits == 0, running.report()


def capture(snap: SnapApiStandIn) -> Capture:
    async def main() -> Capture:
        engine = SnapApiEngine(base_url=snap.base_url, api_key=API_KEY)
        try:
            return await engine.capture(CaptureOptions(url="https://example.com/"))
        finally:
            await engine.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_snapapi_is_not_followed(
    snap: SnapApiStandIn, canary: Canary, status: int
) -> None:
    snap.script([(status, {"Location": f"http://{canary.address}/v1/screenshot"}, b"")])
    with pytest.raises(EngineRejected, match="redirect"):
        capture(snap)
    assert len(snap.requests) == 1


def test_proxy_variables_pointing_at_the_canary_are_ignored(
    snap: SnapApiStandIn, canary: Canary, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.setenv(name, f"http://{canary.address}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert capture(snap).content_type == "image/png"
    assert len(snap.requests) == 1

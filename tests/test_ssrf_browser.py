"""SSRF inside the browser: hostile pages on an allowed address try to reach a canary.

The engine allows only ``127.0.0.1/32``; the canary listens on ``127.0.0.2`` (TCP and
UDP) and must count zero connections and datagrams, whatever the page does: sub-resources
of every kind, redirects, script navigations, DNS rebinding, WebRTC, WebTransport.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from ipaddress import IPv4Address, ip_address, ip_network
from typing import Any

import pytest
from playwright.async_api import async_playwright

from shared.errors import CaptureUrlBlocked, NavigationFailed
from shared.jobs import CaptureOptions
from shared.url_policy import IPAddress, UrlPolicy
from tests.canary import Canary
from tests.engine_loop import EngineOnLoop
from tests.hostile_pages import HostilePages
from worker.engines.browser import (
    NO_PROXY_BYPASS,
    SYSTEM_CHROMIUM,
    SYSTEM_HEADLESS_SHELL,
    chromium_args,
    find_chromium,
)
from worker.engines.chromium import ChromiumEngine
from worker.engines.egress import EgressGate
from worker.engines.navigation import NavigationGuard

POLICY = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))


class TestResolver:
    """A DNS stand-in: each name answers its addresses in turn, then keeps the last one.

    ``rebind-*.test`` names answer the allowed address first and the canary's after: a
    DNS rebinding attack, where the check and the connection would see different answers.
    """

    __test__ = False

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {
            "rebind-sub.test": ["127.0.0.1", "127.0.0.2"],
            "rebind-top.test": ["127.0.0.1", "127.0.0.2"],
            "pages.test": ["127.0.0.1"],
        }
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        asked = self.calls.count(host)
        self.calls.append(host)
        sequence = self.answers[host]
        return [ip_address(sequence[min(asked, len(sequence) - 1)])]


class Browser(EngineOnLoop):
    """The engine under test on its own event loop, with the resolver it was given."""

    def __init__(self, engine: ChromiumEngine, runner: asyncio.Runner,
                 resolver: TestResolver) -> None:
        super().__init__(engine, runner)
        self.resolver = resolver


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    with Canary() as running:
        yield running


@pytest.fixture(scope="module")
def pages(canary: Canary) -> Iterator[HostilePages]:
    with HostilePages(canary.address) as server:
        yield server


@pytest.fixture(scope="module")
def rebinding_canary(pages: HostilePages) -> Iterator[Canary]:
    """A canary on the hostile pages' own port: where a rebound name would connect."""
    with Canary(port=pages.port) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    resolver = TestResolver()
    engine = ChromiumEngine(policy=POLICY, resolver=resolver, max_result_bytes=50_000_000)
    with asyncio.Runner() as runner:
        runner.run(engine.start())
        try:
            yield Browser(engine, runner, resolver)
        finally:
            runner.run(engine.aclose())


@pytest.fixture(autouse=True)
def canaries_stay_silent(canary: Canary, rebinding_canary: Canary) -> Iterator[None]:
    """Every test ends with both canaries never reached."""
    yield
    assert canary.hits == 0, canary.report()
    assert rebinding_canary.hits == 0, rebinding_canary.report()


def test_every_kind_of_subrequest_to_the_canary_is_refused(
    browser: Browser, pages: HostilePages
) -> None:
    capture = browser.capture(pages.url("/subresources"), wait_for_selector="#done")
    # Nothing reached the canary, while the page's own allowed request went through.
    assert capture.title == "reached [] allowed yes"
    assert capture.http_status == 200
    # img x8, srcset, iframe, video, object, font, background, stylesheet, script, icon,
    # fetch x2, xhr, websocket, worker, beacon, ping, popup, TURN over TCP: each refused
    # connection is counted (preconnect/prefetch and retries may add more).
    assert capture.blocked_requests >= 20


def test_the_hostile_page_does_reach_a_canary_that_is_allowed(tmp_path: Any) -> None:
    """The control: with the canary's address allowed, the same page reaches it, so the
    silence of the canary in the other tests is the gate's doing."""
    allowing = UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))
    engine = ChromiumEngine(policy=allowing, max_result_bytes=50_000_000)
    with Canary() as open_canary, HostilePages(open_canary.address) as pages, \
            asyncio.Runner() as runner:
        try:
            capture = runner.run(engine.capture(CaptureOptions(
                url=pages.url("/subresources"), wait_for_selector="#done", timeout_ms=20000
            )))
        finally:
            runner.run(engine.aclose())
        reached = {path.lstrip("/") for path in open_canary.tcp.paths}
    assert capture.title is not None
    assert capture.title.startswith("reached [fetch,post,xhr")
    assert {
        "image.png", "decimal.png", "hex.png", "octal.png", "short.png", "mapped.png",
        "srcset.png", "frame.html", "background.png", "style.css",
        "script.js", "fetch", "post", "xhr", "socket", "worker", "beacon", "ping",
    } <= reached, reached
    # Popups are refused by every capture before they load anything (window.open answers null),
    # whatever the policy allows.
    assert "popup" not in reached
    assert capture.blocked_requests == 0


@pytest.mark.parametrize(
    "path",
    ["/redirect", "/script-later", "/meta-refresh", "/form-post"],
    ids=["302-redirect", "script-location-after-load", "meta-refresh", "form-post"],
)
def test_top_level_navigation_to_the_canary_fails_the_capture(
    browser: Browser, pages: HostilePages, canary: Canary, path: str
) -> None:
    # delay_ms keeps the capture going while the page navigates away after its load.
    with pytest.raises(CaptureUrlBlocked, match=f"{canary.address}.*loopback") as caught:
        browser.capture(pages.url(path), delay_ms=3000)
    assert caught.value.code == "url_blocked"
    assert not caught.value.retryable


def test_the_submitted_url_itself_is_refused_in_the_browser(
    browser: Browser, canary: Canary
) -> None:
    # The engine does not rely on the check made at submission: the gate refuses it again.
    with pytest.raises(CaptureUrlBlocked, match="loopback"):
        browser.capture(f"http://{canary.address}/direct")


def test_dns_rebinding_of_a_subrequest_is_refused(
    browser: Browser, pages: HostilePages, rebinding_canary: Canary
) -> None:
    url = pages.url("/rebind", host="rebind-sub.test")
    asked_before = browser.resolver.calls.count("rebind-sub.test")
    capture = browser.capture(url, wait_for_selector="#done")
    # The page came from the allowed address; its later requests to the same name (the
    # image, the fetch), which DNS would now answer with the canary, went to the address
    # checked first: a capture resolves each name once and never sees a second answer.
    assert capture.title == "data from the allowed address"
    assert capture.blocked_requests == 0
    assert browser.resolver.calls.count("rebind-sub.test") == asked_before + 1
    # The next capture asks again, gets the canary's address, and is refused.
    with pytest.raises(CaptureUrlBlocked, match=r"rebind-sub\.test resolves to 127\.0\.0\.2"):
        browser.capture(url)


def test_dns_rebinding_between_submission_and_capture_is_refused(
    browser: Browser, pages: HostilePages, rebinding_canary: Canary
) -> None:
    url = pages.url("/rebind", host="rebind-top.test")
    # At submission the name resolves to the allowed address and passes the check...
    checked = browser.runner.run(POLICY.acheck_url(url, resolver=browser.resolver))
    assert checked.addresses == (IPv4Address("127.0.0.1"),)
    # ... by the time the browser connects it points at the canary: refused.
    with pytest.raises(CaptureUrlBlocked, match=r"rebind-top\.test resolves to 127\.0\.0\.2"):
        browser.capture(url)


def test_chromium_resolves_no_name_itself(browser: Browser, pages: HostilePages) -> None:
    # pages.test exists only in the test resolver: Chromium's own DNS would not find it.
    capture = browser.capture(pages.url("/rebind", host="pages.test"), wait_for_selector="#done")
    assert capture.title == "data from the allowed address"
    assert capture.blocked_requests == 0


def test_unresolvable_names_fail_as_navigation_errors_not_as_blocks(browser: Browser) -> None:
    with pytest.raises(NavigationFailed, match="ERR_NAME_NOT_RESOLVED"):
        browser.capture("http://no-such-host.test/")


@pytest.mark.parametrize(
    "target",
    [
        "file:///etc/hostname",
        "chrome://version",
        "data:text/html,<title>data-url</title>",
        "view-source:http://127.0.0.1/",
        "javascript:void(document.title='javascript-url')",
    ],
)
def test_local_scheme_navigations_never_show(
    browser: Browser, pages: HostilePages, target: str
) -> None:
    try:
        capture = browser.capture(pages.url(f"/local-scheme?{target}"), delay_ms=1000)
    except CaptureUrlBlocked as exc:
        assert "documents are not allowed" in exc.message
    else:
        assert capture.title in ("first", "javascript-url")
        assert capture.final_url is not None
        assert capture.final_url.startswith("http://127.0.0.1:")


def test_the_guard_refuses_main_frame_documents_of_other_schemes() -> None:
    """Chromium already keeps web content from navigating to these; the guard also catches
    a main frame that gets there any other way (here: the automation itself)."""

    async def scenario() -> list[str]:
        reasons = []
        async with async_playwright() as playwright, EgressGate(POLICY) as gate:
            browser = await playwright.chromium.launch(
                executable_path=find_chromium(None), args=chromium_args(no_sandbox=True)
            )
            try:
                for target in ("data:text/html,<title>data</title>", "file:///etc/hostname"):
                    page = await browser.new_page()
                    guard = NavigationGuard(page, gate)
                    await page.goto(target)
                    async with asyncio.timeout(5):
                        reasons.append(await guard.blocked)
                    await page.close()
            finally:
                await browser.close()
        return reasons

    data, file = asyncio.run(scenario())
    assert "data: documents are not allowed" in data
    assert "file: documents are not allowed" in file


WEBRTC_TO = """async (target) => {
  const connection = new RTCPeerConnection({iceServers: [
    {urls: `stun:${target}`},
    {urls: `turn:${target}?transport=udp`, username: "u", credential: "p"},
  ]});
  connection.createDataChannel("x");
  await connection.setLocalDescription(await connection.createOffer());
  await new Promise(resolve => setTimeout(resolve, 1500));
  connection.close();
}"""


@pytest.mark.parametrize(
    ("executable", "left_out", "leaks"),
    [
        (SYSTEM_HEADLESS_SHELL, None, False),
        (SYSTEM_CHROMIUM, None, False),
        # Where the two binaries differ: each honours only one of the two WebRTC flags.
        (SYSTEM_HEADLESS_SHELL, "--force-webrtc-ip-handling-policy", True),
        (SYSTEM_CHROMIUM, "--webrtc-ip-handling-policy", True),
    ],
    ids=["shell", "full-chromium", "shell-without-its-flag", "full-chromium-without-its-flag"],
)
def test_webrtc_sends_no_udp_on_the_headless_shell_nor_on_full_chromium(
    executable: str, left_out: str | None, leaks: bool
) -> None:
    """WebRTC's STUN/TURN over UDP bypasses any proxy: both flags keep it off UDP, one for
    each binary. Without the one its binary reads, the page reaches a canary of its own."""
    args = [arg for arg in chromium_args(no_sandbox=True)
            if left_out is None or not arg.startswith(left_out + "=")]

    async def scenario(target: str) -> None:
        async with async_playwright() as playwright, EgressGate(POLICY) as gate:
            browser = await playwright.chromium.launch(executable_path=executable, args=args)
            try:
                context = await browser.new_context(
                    proxy={"server": gate.proxy_server, "bypass": NO_PROXY_BYPASS}
                )
                page = await context.new_page()
                await page.set_content("<p>webrtc</p>")
                await page.evaluate(WEBRTC_TO, target)
            finally:
                await browser.close()

    with Canary() as own:
        asyncio.run(scenario(own.address))
    assert (len(own.datagrams) > 0) is leaks, own.report()

"""SSRF through inline documents: ``html`` (and ``markdown``) rendered by the ``chromium``
engine try to reach a canary through every kind of sub-resource, ``<base href>`` and
navigation. The engine allows only ``127.0.0.1/32``; the canary listens on ``127.0.0.2``
(TCP and UDP) and must count zero connections and datagrams (see tests/test_ssrf_browser.py,
whose hostile pages are reused here as documents)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import ip_network

import pytest

from shared.errors import CaptureUrlBlocked
from shared.jobs import CaptureOptions
from shared.url_policy import UrlPolicy
from tests.canary import Canary
from tests.hostile_pages import (
    FORM_POST,
    LOCAL_SCHEME,
    META_REFRESH,
    SCRIPT_LATER,
    SUBRESOURCES,
    HostilePages,
)
from worker.engines.base import Capture
from worker.engines.chromium import ChromiumEngine

POLICY = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))


class Documents:
    """The engine under test on its loop, rendering documents aimed at ``canary``."""

    def __init__(self, engine: ChromiumEngine, runner: asyncio.Runner, canary: Canary) -> None:
        self.engine = engine
        self.runner = runner
        self.canary = canary

    def aimed(self, template: str) -> str:
        return template.replace("%CANARY%", self.canary.address).replace(
            "%PORT%", str(self.canary.port))

    def render(self, template: str, **fields: object) -> Capture:
        options = CaptureOptions.model_validate(
            {"html": self.aimed(template), "timeout_ms": 20000, **fields})
        return self.runner.run(self.engine.capture(options))


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    with Canary() as running:
        yield running


@pytest.fixture(scope="module")
def pages(canary: Canary) -> Iterator[HostilePages]:
    with HostilePages(canary.address) as server:
        yield server


@pytest.fixture(scope="module")
def documents(canary: Canary) -> Iterator[Documents]:
    engine = ChromiumEngine(policy=POLICY, max_result_bytes=50_000_000)
    with asyncio.Runner() as runner:
        runner.run(engine.start())
        try:
            yield Documents(engine, runner, canary)
        finally:
            runner.run(engine.aclose())


@pytest.fixture(autouse=True)
def canary_stays_silent(canary: Canary) -> Iterator[None]:
    """Every test ends with the canary never reached."""
    yield
    assert canary.hits == 0, canary.report()


def test_every_kind_of_subresource_of_an_html_document_is_refused(documents: Documents) -> None:
    capture = documents.render(SUBRESOURCES, wait_for_selector="#done")
    # Nothing reached the canary; the document has no address, so "/allowed" is no URL.
    assert capture.title == "reached [] allowed refused"
    assert capture.blocked_requests >= 20


def test_the_same_document_does_reach_a_canary_that_is_allowed() -> None:
    """The control: with the canary's address allowed, the same document reaches it, so the
    silence of the canary in the other tests is the gate's doing."""
    engine = ChromiumEngine(policy=UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"),)),
                            max_result_bytes=50_000_000)
    with Canary() as open_canary, asyncio.Runner() as runner:
        try:
            capture = Documents(engine, runner, open_canary).render(
                SUBRESOURCES, wait_for_selector="#done")
        finally:
            runner.run(engine.aclose())
        reached = {path.lstrip("/") for path in open_canary.tcp.paths}
    assert capture.title is not None and capture.title.startswith("reached [fetch,post,xhr")
    assert {"image.png", "srcset.png", "frame.html", "background.png", "style.css",
            "script.js", "fetch", "post", "xhr"} <= reached, reached


def test_with_base_url_the_documents_own_site_is_reached_and_the_canary_is_not(
    documents: Documents, pages: HostilePages
) -> None:
    before = len(pages.paths)
    capture = documents.render(SUBRESOURCES, base_url=pages.url("/"), wait_for_selector="#done")
    assert capture.title == "reached [] allowed yes"     # same-origin fetch went through
    assert capture.blocked_requests >= 20
    assert "/" not in pages.paths[before:]                # the document was not fetched


def test_base_href_tricks_are_refused(documents: Documents) -> None:
    html = """<!doctype html><html><head><base href="http://%CANARY%/">
    <link rel="stylesheet" href="base.css"><script src="base.js"></script></head>
    <body><img src="base.png"><iframe src="base-frame.html"></iframe>
    <img src="http://169.254.169.254/latest/meta-data/iam.png">
    <img src="http://10.0.0.1/private.png"><img src="http://[fd00::1]/ula.png">
    <img src="http://localhost:%PORT%/localhost.png">
    <script>fetch("base-fetch").then(() => document.title = "reached",
                                     () => document.title = "refused")</script>
    </body></html>"""
    capture = documents.render(html, delay_ms=500)
    assert capture.title == "refused"
    assert capture.blocked_requests >= 8


def test_a_base_url_on_a_refused_address_reaches_nothing(documents: Documents) -> None:
    # The API refuses such a base_url at submission; the engine alone still connects to
    # nothing there: the document is answered from the request, its loads meet the gate.
    capture = documents.render('<img src="relative.png"><script>fetch("x").then('
                               '() => document.title = "reached", () => document.title = "refused")'
                               "</script>",
                               base_url=f"http://{documents.canary.address}/", delay_ms=500)
    assert capture.title == "refused"
    assert capture.blocked_requests >= 2


@pytest.mark.parametrize(
    "template", [SCRIPT_LATER, META_REFRESH, FORM_POST],
    ids=["script-location-after-load", "meta-refresh", "form-post"],
)
def test_a_document_navigating_itself_to_the_canary_fails_url_blocked(
    documents: Documents, canary: Canary, template: str
) -> None:
    with pytest.raises(CaptureUrlBlocked, match=f"{canary.address}.*loopback") as caught:
        documents.render(template, delay_ms=3000)
    assert caught.value.code == "url_blocked"


def test_a_document_navigating_to_the_metadata_endpoint_fails_url_blocked(
    documents: Documents
) -> None:
    html = '<script>location.href = "http://169.254.169.254/latest/meta-data/"</script>'
    with pytest.raises(CaptureUrlBlocked, match=r"169\.254\.169\.254.*link-local"):
        documents.render(html, delay_ms=3000)


@pytest.mark.parametrize("target", ["file:///etc/hostname", "data:text/html,<title>data-url</title>",
                                    "chrome://version"])
def test_local_scheme_navigations_of_a_document_never_show(
    documents: Documents, target: str
) -> None:
    try:
        capture = documents.render(LOCAL_SCHEME.replace("{TARGET}", target), delay_ms=1000)
    except CaptureUrlBlocked as exc:
        assert "documents are not allowed" in exc.message
    else:
        assert capture.title == "first"
        assert capture.final_url == "about:blank"


def test_markdown_images_meet_the_same_gate(documents: Documents) -> None:
    options = CaptureOptions(markdown=documents.aimed(
        "# Hi\n\n![x](http://%CANARY%/md.png)\n\n![y](http://169.254.169.254/md.png)"),
        timeout_ms=20000)
    capture = documents.runner.run(documents.engine.capture(options))
    assert capture.title == "Hi"
    assert capture.blocked_requests >= 2

"""The web console at ``/``, driven in real headless Chromium (Playwright) against a live API
and worker."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ProcessFactory
from tests.servers import PageServer
from worker.engines.browser import find_chromium

#: Records every text the status line shows, so the test sees each state it went through.
_WATCH_STATUS = """() => {
  window.seenStatus = [];
  new MutationObserver(() => window.seenStatus.push(document.getElementById('status').textContent))
    .observe(document.getElementById('status'), {childList: true, characterData: true, subtree: true});
}"""


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    module_processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    return module_processes.api()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        root = os.geteuid() == 0
        browser = playwright.chromium.launch(
            executable_path=find_chromium(None, bundled=playwright.chromium.executable_path),
            args=["--no-sandbox"] if root else [], chromium_sandbox=not root,
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, base: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors


def test_form_submits_and_the_screenshot_appears(page: Page, page_server: PageServer) -> None:
    page.goto("/")
    expect(page).to_have_title("Shotline console")
    page.evaluate(_WATCH_STATUS)
    # A page that takes a moment to load keeps the job "running" long enough to be seen.
    page.fill("#url", page_server.url("/slow?ms=1200"))
    page.fill("#width", "640")
    page.fill("#height", "400")
    page.click("#submit")

    expect(page.locator("#status")).to_contain_text("succeeded", timeout=30_000)
    image = page.locator("#result-image")
    expect(image).to_be_visible()
    page.wait_for_function("document.getElementById('result-image').complete")
    size = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [640, 400]
    expect(page.locator("#steps li.current")).to_have_text("succeeded")

    states = [text.rsplit(": ", 1)[-1].split(" ")[0] for text in page.evaluate("seenStatus")]
    order = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert order == ["queued", "running", "succeeded"], states

    job_id = (page.locator("#status").text_content() or "").split(" ")[1].rstrip(":")
    tile = page.locator(f'#gallery li[data-job-id="{job_id}"]')
    expect(tile).to_have_attribute("data-status", "succeeded")
    thumb = tile.locator("img")
    expect(thumb).to_have_attribute("alt", page_server.url("/slow?ms=1200"))
    thumb.scroll_into_view_if_needed()
    page.wait_for_function(
        "id => { const img = document.querySelector(`#gallery li[data-job-id='${id}'] img`);"
        " return img.complete && img.naturalWidth === 640; }", arg=job_id)


def test_failures_and_refusals_are_shown(page: Page, page_server: PageServer) -> None:
    page.goto("/")
    page.fill("#url", page_server.url("/status/404"))
    page.click("#submit")
    expect(page.locator("#error")).to_contain_text("http_error", timeout=30_000)
    expect(page.locator("#steps li.failed")).to_have_text("failed")
    expect(page.locator("#result")).to_be_hidden()

    page.fill("#url", "http://169.254.169.254/latest/meta-data/")
    page.click("#submit")
    expect(page.locator("#error")).to_contain_text("url_blocked")
    expect(page.locator("#error")).to_contain_text("request ")


def test_api_key_is_kept_in_the_browser_and_sent(page: Page) -> None:
    page.goto("/")
    page.fill("#api-key", "sk_console_test")
    page.locator("#api-key").dispatch_event("change")
    with page.expect_request(lambda r: r.url.endswith("/v1/jobs?limit=12")) as listing:
        page.reload()
    assert listing.value.headers["authorization"] == "Bearer sk_console_test"
    expect(page.locator("#api-key")).to_have_value("sk_console_test")


def test_console_is_served_with_a_strict_policy(base: str) -> None:
    with httpx.Client(base_url=base) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self'
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script = client.get("/console/console.js")
        assert script.headers["content-type"].startswith("text/javascript")
        missing = client.get("/console/secrets.txt")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert "/" not in client.get("/openapi.json").json()["paths"]


def test_with_api_keys_the_pasted_key_is_used(
    browser: Browser, processes: ProcessFactory, shotline_env: dict[str, str],
    page_server: PageServer, tmp_path: Path,
) -> None:
    from tests.test_client_auth import _create_key

    key = _create_key(shotline_env, "console")
    processes.worker()
    base = processes.api()
    context = browser.new_context(base_url=base)
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.locator("#gallery")).to_contain_text("paste your API key above")
        # One row across the gallery, not squeezed into a picture's tile.
        note, gallery = (page.locator(sel).bounding_box() for sel in ("#gallery li.note", "#gallery"))
        assert note is not None and gallery is not None and note["width"] >= gallery["width"] - 1
        page.screenshot(path=tmp_path / "unauthorized.png", full_page=True)
        page.fill("#url", page_server.url("/index.html"))
        page.click("#submit")
        expect(page.locator("#error")).to_contain_text("unauthorized")

        page.fill("#api-key", key)
        page.click("#submit")
        expect(page.locator("#status")).to_contain_text("succeeded", timeout=30_000)
        expect(page.locator("#result-image")).to_be_visible()
        expect(page.locator("#gallery li[data-status=succeeded]")).to_have_count(1)
        page.reload()  # the key was kept in the browser
        expect(page.locator("#api-key")).to_have_value(key)
        expect(page.locator("#gallery li[data-status=succeeded]")).to_have_count(1)
    finally:
        context.close()


def test_a_refused_submit_clears_the_previous_jobs_progress(
    page: Page, page_server: PageServer, tmp_path: Path
) -> None:
    page.goto("/")
    page.fill("#url", page_server.url("/index.html"))
    page.fill("#width", "400")
    page.fill("#height", "300")
    page.click("#submit")
    expect(page.locator("#status")).to_contain_text("succeeded", timeout=30_000)
    expect(page.locator("#steps li.current")).to_have_text("succeeded")

    page.fill("#url", "http://169.254.169.254/latest/meta-data/")
    page.click("#submit")
    expect(page.locator("#error")).to_contain_text("url_blocked")
    expect(page.locator("#status")).to_have_text("")
    expect(page.locator("#steps li.current, #steps li.done, #steps li.failed")).to_have_count(0)
    expect(page.locator("#result")).to_be_hidden()
    page.screenshot(path=tmp_path / "refused.png", full_page=True)


def test_gallery_captions_show_the_url_and_thumbnails_keep_the_left(
    page: Page, page_server: PageServer, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto("/")
    page.fill("#url", page_server.url("/wide.html?from=console-test"))
    page.fill("#width", "2400")
    page.fill("#height", "400")
    page.click("#submit")
    expect(page.locator("#status")).to_contain_text("succeeded", timeout=30_000)
    job_id = page.locator("#status").inner_text().split(" ")[1].rstrip(":")
    tile = page.locator(f'#gallery li[data-job-id="{job_id}"]')
    caption = tile.locator(".where")
    expect(caption).to_have_text(f"127.0.0.1:{page_server.port}/wide.html"
                                 "?from=console-test")
    # Shown whole (three lines at most), not cut to "http://127.0.…".
    assert caption.evaluate("e => e.scrollHeight <= e.clientHeight + 1 && e.scrollWidth <= e.clientWidth")
    page.wait_for_function(
        "id => { const img = document.querySelector(`#gallery li[data-job-id='${id}'] img`);"
        " return img.complete && img.naturalWidth === 2400; }", arg=job_id)
    thumb = tile.locator("img")
    thumb.screenshot(path=tmp_path / "thumb.png")
    with Image.open(tmp_path / "thumb.png") as picture:
        # The page's green strip is its left 200 of 2400 px: kept, not cropped away.
        assert picture.convert("RGB").getpixel((2, picture.height // 2)) == (0, 160, 0)
    page.screenshot(path=tmp_path / "gallery.png", full_page=True)


def test_favicon_is_served(base: str) -> None:
    with httpx.Client(base_url=base) as client:
        response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/x-icon"
    with Image.open(io.BytesIO(response.content)) as icon:
        assert icon.format == "ICO" and icon.size[0] >= 16

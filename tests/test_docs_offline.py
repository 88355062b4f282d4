"""``/docs`` and ``/redoc`` render without the internet: Swagger UI's and ReDoc's files come
from the package. Real headless Chromium against a live API, every request to any other
origin aborted."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.conftest import ProcessFactory
from worker.engines.browser import find_chromium


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
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
def offline_page(browser: Browser, base: str) -> Iterator[tuple[Page, list[str]]]:
    """A page whose requests outside the API's origin are aborted (and listed)."""
    context = browser.new_context()
    cut: list[str] = []

    def only_the_api(route: Route) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            # ReDoc's footer shows its maker's logo from their CDN: a missing picture, not a
            # missing page. Anything else from outside (scripts, styles, fonts) would be.
            if route.request.resource_type != "image":
                cut.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_api)
    page = context.new_page()
    yield page, cut
    context.close()


def test_swagger_ui_renders_the_operations_offline(
    offline_page: tuple[Page, list[str]], base: str
) -> None:
    page, cut = offline_page
    page.goto(f"{base}/docs")
    submit = page.locator(".opblock-summary", has_text="/v1/screenshots").first
    expect(submit).to_be_visible(timeout=20_000)
    expect(page.locator(".opblock-summary-description", has_text="Submit a capture")).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    assert cut == [], f"/docs asked for outside files: {cut}"


def test_redoc_renders_the_operations_offline(
    offline_page: tuple[Page, list[str]], base: str
) -> None:
    page, cut = offline_page
    page.goto(f"{base}/redoc")
    expect(page.get_by_role("heading", name="Submit a capture").first).to_be_visible(timeout=20_000)
    assert cut == [], f"/redoc asked for outside files: {cut}"

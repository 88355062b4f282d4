"""How :class:`~shared.jobs.CaptureOptions` become Playwright settings for the ``chromium``
engine: the browser context's emulation (device, locale, time zone, media features,
headers, auth), cookies, injected CSS and JS, the click, and the PDF's page setup.

Pure mappings where possible (``context_options``, ``pdf_options``), thin async helpers
otherwise; :mod:`worker.engines.chromium` calls them in order.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from playwright._impl._api_structures import SetCookieParam  # the type add_cookies takes; not re-exported
from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from shared.errors import PageScriptFailed, SelectorNotFound
from shared.jobs import CaptureOptions
from shared.options import PdfPageSize
from worker.engines.browser import first_line

#: Playwright's paper format names.
PDF_FORMATS: Final = {
    PdfPageSize.a3: "A3",
    PdfPageSize.a4: "A4",
    PdfPageSize.a5: "A5",
    PdfPageSize.letter: "Letter",
    PdfPageSize.legal: "Legal",
    PdfPageSize.tabloid: "Tabloid",
}

#: The request's ``js`` runs as the body of an async function: ``await`` works, and a
#: returned promise is waited for.
#: Runs the request's ``js`` (it may ``await``); answers null, or what it threw in the page's
#: own terms ("TypeError: x is undefined"), so the job's error never speaks Playwright.
RUN_SCRIPT_JS: Final = """async source => {
  try {
    await (0, eval)('(async () => {' + source + '\\n})()');
    return null;
  } catch (thrown) {
    if (thrown instanceof Error) return `${thrown.name}: ${thrown.message}`;
    try { return JSON.stringify(thrown) ?? String(thrown); } catch { return String(thrown); }
  }
}"""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def context_options(options: CaptureOptions) -> dict[str, Any]:
    """Keyword arguments of ``browser.new_context`` for one capture.

    Downloads, service workers (they would hide requests from blocking) and permissions
    are always off; CSP is bypassed only when the request injects CSS or JS.
    """
    kwargs: dict[str, Any] = {
        "viewport": {"width": options.width, "height": options.height},
        "device_scale_factor": options.device_scale_factor,
        "is_mobile": options.is_mobile,
        "has_touch": options.has_touch,
        "color_scheme": "dark" if options.dark_mode else "light",
        "reduced_motion": "reduce" if options.reduced_motion else "no-preference",
        "accept_downloads": False,
        "service_workers": "block",
        "permissions": [],
    }
    if options.user_agent is not None:
        kwargs["user_agent"] = options.user_agent
    if options.locale is not None:
        kwargs["locale"] = options.locale
    if options.timezone is not None:
        kwargs["timezone_id"] = options.timezone
    if options.headers:
        kwargs["extra_http_headers"] = dict(options.headers)
    if options.http_auth is not None:
        kwargs["http_credentials"] = {
            "username": options.http_auth.username,
            "password": options.http_auth.password,
            "origin": origin_of(options.url),  # never sent to other sites
        }
    if options.css is not None or options.js is not None or options.hide_selectors:
        kwargs["bypass_csp"] = True
    return kwargs


def cookie_params(options: CaptureOptions) -> list[SetCookieParam]:
    """The request's cookies for ``context.add_cookies`` (the page's URL when no domain)."""
    params: list[SetCookieParam] = []
    for cookie in options.cookies:
        param: SetCookieParam = {
            "name": cookie.name,
            "value": cookie.value,
            "secure": cookie.secure,
            "httpOnly": cookie.http_only,
        }
        if cookie.domain is not None:
            param["domain"] = cookie.domain
            param["path"] = cookie.path
        else:
            parts = urlsplit(options.url)
            param["url"] = f"{parts.scheme}://{parts.netloc}{cookie.path}"
        if cookie.same_site is not None:
            param["sameSite"] = cookie.same_site
        params.append(param)
    return params


async def prepare_context(context: BrowserContext, options: CaptureOptions) -> None:
    """Set the request's cookies in ``context`` before the page loads."""
    if options.cookies:
        await context.add_cookies(cookie_params(options))


def page_css(options: CaptureOptions) -> str | None:
    """The style sheet the request adds: ``hide_selectors`` then its own ``css``."""
    parts = [f"{selector} {{ display: none !important; }}" for selector in options.hide_selectors]
    if options.css is not None:
        parts.append(options.css)
    return "\n".join(parts) or None


async def style_page(page: Page, options: CaptureOptions) -> None:
    """Add :func:`page_css` to the loaded page."""
    css = page_css(options)
    if css is not None:
        await page.add_style_tag(content=css)


async def run_script(page: Page, source: str) -> None:
    """Run the request's ``js`` in the page and wait for it.

    Raises:
        PageScriptFailed: the script does not parse or throws.
    """
    try:
        thrown = await page.evaluate(RUN_SCRIPT_JS, source)
    except PlaywrightError as exc:
        message = first_line(exc.message)
        if "Target" in message and "closed" in message:
            raise
        # Playwright prefixes its method ("Page.evaluate: "): not the user's terms.
        message = message.split(": ", 1)[-1]
        raise PageScriptFailed(f"the js option could not run in the page: {message}") from exc
    if thrown is not None:
        raise PageScriptFailed(
            f"the js option threw {thrown}; fix the script (it runs in the page after load and"
            " may use await) or leave js out"
        )


async def click(page: Page, selector: str, *, timeout_ms: float) -> None:
    """Click the first visible element ``selector`` matches (scrolled into view first).

    Raises:
        SelectorNotFound: nothing visible matches.
    """
    element = page.locator(selector).first
    try:
        if await element.count() == 0:
            raise SelectorNotFound(f"no element matches click_selector {selector!r}")
        await element.click(timeout=timeout_ms)
    except PlaywrightError as exc:
        message = first_line(exc.message)
        if "selector" in message.lower() or "Timeout" in message:
            raise SelectorNotFound(f"could not click {selector!r}: {message}") from exc
        raise


def pdf_options(options: CaptureOptions) -> dict[str, Any]:
    """Keyword arguments of ``page.pdf`` (backgrounds printed unless turned off)."""
    setup = options.pdf_options
    if setup is None:
        return {"print_background": True}
    kwargs: dict[str, Any] = {
        "print_background": setup.print_background,
        "landscape": setup.landscape,
        "scale": setup.scale,
    }
    if setup.page_size is not None:
        kwargs["format"] = PDF_FORMATS[setup.page_size]
    margin = {
        side: value
        for side, value in (
            ("top", setup.margin_top), ("bottom", setup.margin_bottom),
            ("left", setup.margin_left), ("right", setup.margin_right),
        )
        if value is not None
    }
    if margin:
        kwargs["margin"] = margin
    if setup.page_ranges is not None:
        kwargs["page_ranges"] = setup.page_ranges
    return kwargs

"""What a request does to the loaded page just before its picture: ``remove_selectors``,
``scroll_to``, ``hover``, and the text checks ``fail_if_content_contains`` /
``fail_if_content_missing``."""

from __future__ import annotations

from typing import Final

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from shared.errors import ContentCheckFailed, SelectorNotFound
from worker.engines.browser import first_line
from worker.engines.output import selector_error

#: Most page text read for the content checks (characters).
MAX_TEXT_CHARS: Final = 2_000_000

#: Removes every element each selector matches; names the first selector that is invalid.
REMOVE_JS: Final = """selectors => {
  let removed = 0;
  for (const selector of selectors) {
    let found;
    try { found = document.querySelectorAll(selector); } catch (e) { return {invalid: selector, removed}; }
    for (const el of found) { el.remove(); removed += 1; }
  }
  return {invalid: null, removed};
}"""

#: The page's visible text and its title, bounded.
TEXT_JS: Final = """limit => ((document.title || '') + '\\n' +
  (document.body ? document.body.innerText : document.documentElement.textContent || '')).slice(0, limit)"""


async def remove_elements(page: Page, selectors: list[str]) -> int:
    """Remove what ``selectors`` match from the DOM; returns how many elements went.

    Raises:
        SelectorNotFound: a selector is not valid CSS.
    """
    report = await page.evaluate(REMOVE_JS, selectors)
    if report["invalid"] is not None:
        raise SelectorNotFound(f"remove_selectors {report['invalid']!r} is not a valid selector")
    removed: int = report["removed"]
    return removed


async def scroll_to(page: Page, selector: str, *, timeout_ms: float) -> None:
    """Scroll the element ``selector`` matches to the top of the viewport.

    Raises:
        SelectorNotFound: nothing matches.
    """
    element = page.locator(selector).first
    try:
        if await element.count() == 0:
            raise SelectorNotFound(f"no element matches scroll_to {selector!r}")
        await element.evaluate("el => el.scrollIntoView({block: 'start', inline: 'nearest'})",
                               timeout=timeout_ms)
        # Two frames, so that sticky headers and lazy content settle where they are.
        await page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    except PlaywrightError as exc:
        raise selector_error(exc, "scroll_to", selector) from exc


async def park_mouse(page: Page) -> None:
    """Move the mouse off the page, so that nothing shows its ``:hover`` state.

    The headless shell puts the pointer at (0, 0) of every page it navigates to (full
    Chromium has none): a menu opened by ``:hover`` in the top left corner would show,
    and cover what is below it, in every picture.
    """
    await page.mouse.move(-1, -1)


async def hover(page: Page, selector: str, *, timeout_ms: float) -> None:
    """Move the mouse over the element ``selector`` matches (menus, tooltips open).

    Raises:
        SelectorNotFound: nothing visible matches.
    """
    element = page.locator(selector).first
    try:
        if await element.count() == 0:
            raise SelectorNotFound(f"no element matches hover {selector!r}")
        await element.hover(timeout=timeout_ms)
    except PlaywrightError as exc:
        message = first_line(exc.message)
        if "Timeout" in message:
            raise SelectorNotFound(f"could not hover over {selector!r}: {message}") from exc
        raise selector_error(exc, "hover", selector) from exc


def content_problem(text: str, *, contains: list[str], missing: list[str]) -> str | None:
    """Why ``text`` fails the checks (case-insensitive), or None when it passes."""
    folded = text.casefold()
    for needle in contains:
        if needle.casefold() in folded:
            return f"the page contains {needle!r} (fail_if_content_contains)"
    for needle in missing:
        if needle.casefold() not in folded:
            return f"the page does not contain {needle!r} (fail_if_content_missing)"
    return None


async def check_content(page: Page, *, contains: list[str], missing: list[str]) -> None:
    """Fail the capture when the page's text (title included) fails the checks.

    Raises:
        ContentCheckFailed: it does.
    """
    text: str = await page.evaluate(TEXT_JS, MAX_TEXT_CHARS)
    problem = content_problem(text, contains=contains, missing=missing)
    if problem is not None:
        raise ContentCheckFailed(problem)

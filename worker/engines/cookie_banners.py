"""``block_cookie_banners`` for the ``chromium`` engine: find known consent managers on the
page, click their "accept" button, then hide what is left of them.

The rules are data: ``data/consent_rules.json`` (generated from DuckDuckGo's autoconsent
rules by ``shotline blocklist update``) and ``data/consent_rules_core.json`` (the big
consent managers autoconsent handles in code, kept by hand). Each rule has ``detect``
selectors, ``accept`` buttons and ``hide`` selectors, and optionally a ``url`` pattern.

Accepting comes first because it removes what hiding cannot see (scroll locks, blurred
content, overlays added by script); hiding follows for banners that stay or have no
button. Scrolling is unlocked only when a consent manager was found.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from shared.errors import ConfigurationError
from worker.engines.blocking import DATA_DIR

log = structlog.get_logger("shotline.engines.cookie_banners")

RULE_FILES: Final = (DATA_DIR / "consent_rules_core.json", DATA_DIR / "consent_rules.json")

#: How long a click on "accept" may take to settle (animations, a reload).
SETTLE_MS: Final = 400

#: In the page: which rules' consent managers are present; clicks the first visible
#: accept button of each. Bad selectors are skipped, never thrown.
DETECT_AND_ACCEPT_JS: Final = """rules => {
  const all = sel => { try { return Array.from(document.querySelectorAll(sel)); } catch (e) { return []; } };
  const visible = el => {
    const style = getComputedStyle(el), box = el.getBoundingClientRect();
    return style.display !== 'none' && style.visibility !== 'hidden' && box.width > 0 && box.height > 0;
  };
  const found = [];
  for (const rule of rules) {
    if (!rule.detect.some(sel => all(sel).length > 0)) continue;
    let clicked = false;
    for (const sel of rule.accept) {
      const button = all(sel).find(visible);
      if (button) { button.click(); clicked = true; break; }
    }
    found.push({name: rule.name, clicked, hide: rule.hide});
  }
  return found;
}"""

#: After a consent manager was handled: let the page scroll again.
UNLOCK_SCROLL_CSS: Final = "html, body { overflow: auto !important; }"


@dataclass(frozen=True, slots=True)
class ConsentRule:
    """How to recognise, accept and hide one consent manager."""

    name: str
    url: re.Pattern[str] | None
    detect: tuple[str, ...]
    accept: tuple[str, ...]
    hide: tuple[str, ...]

    def applies_to(self, url: str) -> bool:
        """Whether this rule is for ``url`` (rules without a pattern are for every site)."""
        return self.url is None or self.url.search(url) is not None

    def as_js(self) -> dict[str, Any]:
        """The rule as :data:`DETECT_AND_ACCEPT_JS` takes it."""
        return {"name": self.name, "detect": self.detect, "accept": self.accept,
                "hide": self.hide}


def parse_rules(document: dict[str, Any]) -> list[ConsentRule]:
    """The rules of one data file; a rule whose URL pattern Python cannot read is skipped."""
    rules = []
    for raw in document.get("rules", []):
        pattern = None
        if raw.get("url"):
            try:
                pattern = re.compile(raw["url"])
            except re.error:
                continue
        rules.append(ConsentRule(
            name=str(raw["name"]),
            url=pattern,
            detect=tuple(raw.get("detect", ())),
            accept=tuple(raw.get("accept", ())),
            hide=tuple(raw.get("hide", ())),
        ))
    return rules


@functools.cache
def load_rules(paths: tuple[Path, ...] = RULE_FILES) -> tuple[ConsentRule, ...]:
    """Every consent rule shipped with Shotline (read once per process)."""
    rules: list[ConsentRule] = []
    for path in paths:
        try:
            rules += parse_rules(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"cannot read the consent rules {path}: {exc}; run `shotline blocklist update`"
            ) from exc
    return tuple(rules)


def hiding_css(selectors: list[str]) -> str:
    """A style sheet hiding ``selectors`` (one rule each, so one bad selector spoils none)."""
    return "\n".join(f"{selector} {{ display: none !important; }}" for selector in selectors)


async def dismiss_cookie_banners(
    page: Page, *, timeout_ms: float, rules: tuple[ConsentRule, ...] | None = None
) -> list[str]:
    """Accept and hide the consent managers found on ``page``; returns their names."""
    applicable = [rule.as_js() for rule in (rules or load_rules()) if rule.applies_to(page.url)]
    found: list[dict[str, Any]] = await page.evaluate(DETECT_AND_ACCEPT_JS, applicable)
    if not found:
        return []
    if any(item["clicked"] for item in found):
        await asyncio.sleep(SETTLE_MS / 1000)
        with contextlib.suppress(PlaywrightTimeoutError):  # an "accept" may reload the page
            await page.wait_for_load_state("load", timeout=max(min(timeout_ms, 5000), 1))
    hide = [selector for item in found for selector in item["hide"]]
    try:
        await page.add_style_tag(content=hiding_css(hide) + "\n" + UNLOCK_SCROLL_CSS)
    except PlaywrightError as exc:  # e.g. the page navigated meanwhile
        log.info("Could not hide the cookie banners.", error=exc.message.splitlines()[0])
    names = [item["name"] for item in found]
    log.debug("Cookie banners handled.", consent_managers=names, url=page.url)
    return names

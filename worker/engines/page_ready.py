"""Getting a loaded page ready for its picture: scroll through it so lazy content loads,
then wait for images and web fonts.

``loading=lazy`` images, infinite-scroll sections and scroll-triggered animations only
appear once the viewport comes near them; a full-page screenshot taken straight after
``load`` shows blank boxes instead. The page is scrolled one viewport at a time down to
the captured height, then back to the top (so sticky headers sit where a reader sees
them, once), and the capture waits for the images in the captured area and for
``document.fonts.ready``. Every wait is bounded by the time the capture has left.
"""

from __future__ import annotations

from typing import Final

from playwright.async_api import Page

#: Pause after each scroll step, for observers and image requests to fire.
SCROLL_PAUSE_MS: Final = 120
#: Most time spent scrolling, and most spent waiting for images and fonts.
MAX_SCROLL_MS: Final = 10_000
MAX_ASSET_WAIT_MS: Final = 5_000
#: Tallest page scrolled through when ``max_height`` does not say (CSS px).
MAX_SCROLL_HEIGHT: Final = 20_000

#: In the page: scroll down a viewport at a time to ``limit`` (re-measured as the page
#: grows), within ``budget`` ms; then back to the top and two frames for layout.
SCROLL_THROUGH_JS: Final = """async ({limit, pause, budget}) => {
  const height = () => Math.max(document.documentElement.scrollHeight,
                                document.body ? document.body.scrollHeight : 0);
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const started = performance.now();
  let y = 0, steps = 0;
  while (y + innerHeight < Math.min(height(), limit) && performance.now() - started < budget) {
    y += Math.max(innerHeight, 100);
    window.scrollTo(0, y);
    steps += 1;
    await sleep(pause);
  }
  window.scrollTo(0, 0);
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  await sleep(pause);
  return steps;
}"""

#: In the page: wait (at most ``budget`` ms) for the images that start above ``limit``
#: and for web fonts.
WAIT_FOR_ASSETS_JS: Final = """async ({limit, budget}) => {
  const timeout = new Promise(resolve => setTimeout(resolve, budget));
  const pending = Array.from(document.images).filter(img =>
    !img.complete && img.getBoundingClientRect().top + window.scrollY < limit);
  const loaded = Promise.all(pending.map(img => new Promise(resolve => {
    img.addEventListener('load', resolve, {once: true});
    img.addEventListener('error', resolve, {once: true});
  })));
  await Promise.race([Promise.all([loaded, document.fonts.ready]), timeout]);
  return pending.length;
}"""


async def scroll_through(page: Page, *, max_height: int | None, remaining_ms: float) -> int:
    """Scroll the page down to ``max_height`` (or :data:`MAX_SCROLL_HEIGHT`) and back.

    Uses at most half the remaining time; returns the number of scroll steps.
    """
    budget = min(MAX_SCROLL_MS, remaining_ms / 2)
    steps: int = await page.evaluate(
        SCROLL_THROUGH_JS,
        {"limit": max_height or MAX_SCROLL_HEIGHT, "pause": SCROLL_PAUSE_MS, "budget": budget},
    )
    return steps


async def wait_for_assets(page: Page, *, limit: int, remaining_ms: float) -> int:
    """Wait for the images above ``limit`` CSS px and for web fonts, within a third of the
    remaining time; returns how many images were still loading."""
    budget = min(MAX_ASSET_WAIT_MS, remaining_ms / 3)
    pending: int = await page.evaluate(WAIT_FOR_ASSETS_JS, {"limit": limit, "budget": budget})
    return pending

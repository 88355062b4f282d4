"""``block_cookie_banners`` on a gallery of home-grown consent banners (tests/pages/consent):
bars, boxes, modals with backdrops, walls with scroll locks, shadow DOM, frames, ten
languages, banners injected after load, Blogger's notice; and look-alikes that must stay
(fixed headers and footers, sidebars, modals that are not about consent). Pixels checked:
each banner page is pure blue (the article) once the banner is gone, nothing dimmed; each
look-alike page is the same picture with and without the option.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import ImageChops

from tests.quality_shooter import Shooter, count, picture, shooter_on
from tests.servers import PageServer

BLUE, MAGENTA, GREEN = (0, 0, 255), (255, 0, 255), (0, 255, 0)
WIDTH, HEIGHT = 1280, 800

#: Banner pages, and whether their accept/close control removes the banner (the picture
#: then shows it was clicked: the page sets its title to "accepted").
BANNERS = {
    "bottom-bar": True, "top-bar": True, "modal-backdrop": False, "corner-box": True,
    "wall-scroll-lock": False, "shadow-dom": True, "iframe-same-origin": True,
    "iframe-cross-origin": False, "lang-de": True, "lang-fr": True, "lang-es": True,
    "lang-it": True, "lang-pt": True, "lang-nl": True, "lang-pl": True, "lang-sv": True,
    "lang-ja": True, "injected-late": False, "injected-modal": False, "blogger": True,
    "sticky-bottom": True, "close-only": True, "dialog-modal": False, "bar-with-header": True,
}
#: Banners that appear after load need the capture to wait for them to be seen at all.
DELAYS = {"injected-late": 2500, "injected-modal": 2000}

LOOK_ALIKES = [
    "fixed-header", "fixed-footer", "sticky-sidebar", "newsletter-modal", "login-modal",
    "cart-bar", "recipe-title", "age-gate", "fixed-background", "cookie-promo", "toast",
    "app-shell", "german-footer",
]


@pytest.fixture(scope="module")
def shooter(page_server: PageServer) -> Iterator[Shooter]:
    yield from shooter_on(page_server)


def test_the_gallery_is_as_large_as_promised() -> None:
    assert len(BANNERS) >= 20 and len(LOOK_ALIKES) >= 10


@pytest.mark.parametrize("name", sorted(BANNERS))
def test_banner_is_gone_and_the_page_undimmed(shooter: Shooter, name: str) -> None:
    delay = DELAYS.get(name, 0)
    before = picture(shooter.capture(f"/consent/{name}.html", host="news.test", delay_ms=delay))
    assert count(before, MAGENTA) > 2000, "the banner shows without the option"

    after = shooter.capture(f"/consent/{name}.html", host="news.test", delay_ms=delay,
                            block_cookie_banners=True)
    shot = picture(after)
    assert count(shot, MAGENTA) == 0
    # The article everywhere (only the legitimate fixed header besides): no backdrop left.
    assert count(shot, BLUE) == WIDTH * HEIGHT - count(shot, GREEN)
    if name == "bar-with-header":
        assert count(shot, GREEN) == WIDTH * 60
    if BANNERS[name]:
        assert after.title == "accepted", "the banner's own control was clicked"


def test_scroll_lock_is_removed(shooter: Shooter) -> None:
    """The page writes its root's overflow and its body's position to its title."""
    locked = shooter.capture("/consent/wall-scroll-lock.html", host="news.test", delay_ms=200)
    assert locked.title == "hidden fixed"
    unlocked = shooter.capture("/consent/wall-scroll-lock.html", host="news.test", delay_ms=200,
                               block_cookie_banners=True)
    assert unlocked.title == "auto static"
    full = picture(shooter.capture("/consent/wall-scroll-lock.html", host="news.test",
                                   full_page=True, block_cookie_banners=True))
    assert full.height >= 2000 and count(full, MAGENTA) == 0
    assert count(full, BLUE) == full.width * full.height


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_look_alike_stays(shooter: Shooter, name: str) -> None:
    plain = picture(shooter.capture(f"/consent/keep-{name}.html", host="news.test"))
    assert count(plain, MAGENTA) > 2000
    cleaned = picture(shooter.capture(f"/consent/keep-{name}.html", host="news.test",
                                      block_cookie_banners=True))
    assert ImageChops.difference(plain, cleaned).getbbox() is None

"""``block_ads``, ``block_trackers`` and ``block_chats`` on the shipped filter lists
(EasyList, EasyPrivacy, chat widgets), against real Chromium, pixels checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.quality_shooter import Shooter, count, picture, shooter_on
from tests.servers import PageServer

RED, GREEN, BLUE, MAGENTA = (255, 0, 0), (0, 128, 0), (0, 0, 255), (255, 0, 255)
BOX = 300 * 100


@pytest.fixture(scope="module")
def shooter(page_server: PageServer) -> Iterator[Shooter]:
    yield from shooter_on(page_server)


def test_block_ads_refuses_third_party_ads_hides_ad_slots_and_keeps_first_party(
    shooter: Shooter,
) -> None:
    plain = shooter.capture("/quality/ads.html", host="news.test", width=400, height=600)
    shot = picture(plain)
    assert count(shot, RED) == BOX and count(shot, MAGENTA) == BOX
    assert plain.blocked_requests == 0

    blocked = shooter.capture("/quality/ads.html", host="news.test", width=400, height=600,
                              block_ads=True)
    shot = picture(blocked)
    assert count(shot, RED) == 0  # /banner-ads/ from another host: refused by EasyList
    assert count(shot, MAGENTA) == 0  # ###ad-slot: EasyList's generic element hiding
    assert count(shot, BLUE) == BOX  # first-party image
    assert count(shot, GREEN) == BOX  # first-party image at an "ad" path: never refused
    assert blocked.blocked_requests == 1
    # On a local address EasyList turns its generic hiding off (@@://127.0.0.1$generichide).
    local = picture(shooter.capture("/quality/ads.html", width=400, height=600, block_ads=True))
    assert count(local, MAGENTA) == BOX and count(local, RED) == 0


def test_block_trackers_refuses_easyprivacy_hosts_but_not_the_pages_own_copy(
    shooter: Shooter,
) -> None:
    plain = shooter.capture("/quality/trackers.html")
    assert plain.title == "loaded: 127.0.0.1 localhost"
    tracked = shooter.capture("/quality/trackers.html", block_trackers=True)
    assert tracked.title == "loaded: 127.0.0.1"
    assert tracked.blocked_requests == 2  # localhost/piwik.js and google-analytics.com
    ads_only = shooter.capture("/quality/trackers.html", block_ads=True)
    assert ads_only.title == "loaded: 127.0.0.1 localhost"  # EasyList is not EasyPrivacy


def test_block_chats_refuses_widget_loaders_and_hides_launchers(shooter: Shooter) -> None:
    plain = shooter.capture("/quality/chats.html", width=400, height=300)
    assert count(picture(plain), MAGENTA) >= 3 * 80 * 80
    assert plain.blocked_requests == 0
    clean = shooter.capture("/quality/chats.html", width=400, height=300, block_chats=True)
    shot = picture(clean)
    assert count(shot, MAGENTA) == 0
    assert count(shot, BLUE) == BOX
    assert clean.blocked_requests == 3  # intercom, tawk.to, tidio

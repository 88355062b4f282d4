"""Blank-capture detection: ``result.blank`` on every picture, ``retry_if_blank``, and the
result cache never keeping a blank result. Real Chromium on local pages; real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from PIL import Image, ImageDraw

from shared.connections import create_redis
from shared.jobs import CaptureOptions, Job, JobStatus, StoredResult, new_job_id, utcnow
from shared.result_cache import ResultCache, options_digest
from shared.status_store import StatusStore
from tests.quality_shooter import Shooter, count, picture, shooter_on
from tests.servers import PageServer
from worker.engines.blank import BLANK_SHARE, blank_share

RED = (255, 0, 0)


@pytest.fixture(scope="module")
def shooter(page_server: PageServer) -> Iterator[Shooter]:
    yield from shooter_on(page_server)


def test_one_colour_and_a_lone_word_are_blank_a_line_of_text_is_not() -> None:
    flat = Image.new("RGB", (1280, 800), (250, 250, 250))
    assert blank_share(flat) == 1.0
    spinner = flat.copy()
    ImageDraw.Draw(spinner).text((620, 390), "Loading", fill="black")
    assert blank_share(spinner) >= BLANK_SHARE
    text = flat.copy()
    for line in range(3):
        ImageDraw.Draw(text).text((100, 100 + 20 * line), "Example Domain. " * 5, fill="black")
    assert blank_share(text) < BLANK_SHARE


def test_the_sample_shortcut_and_the_full_count_agree() -> None:
    """A picture decided from its 64x64 sample (most pictures) gets the answer counting every
    pixel gives: a header band, a scatter of dots just under and just over the limit."""
    flat = Image.new("RGB", (1280, 800), (236, 240, 248))
    band = flat.copy()
    band.paste((66, 99, 235), (0, 0, 1280, 80))  # the SnapAPI stand-in's picture
    assert blank_share(band) < BLANK_SHARE
    # Dots of 2x2 pixels (one pixel each once reduced to 640 px): 100 is under the 128
    # pixels a blank 640x400 picture may have away from its colour, 400 over.
    for dots, blank in ((100, True), (400, False)):
        dotted = flat.copy()
        draw = ImageDraw.Draw(dotted)
        for n in range(dots):
            x, y = (n * 97) % 1270 // 2 * 2, (n * 53) % 790 // 2 * 2
            draw.rectangle((x, y, x + 1, y + 1), fill="black")
        assert (blank_share(dotted) >= BLANK_SHARE) is blank, dots


def test_every_picture_says_whether_it_is_blank(shooter: Shooter) -> None:
    assert shooter.capture("/quality/blank.html").blank is True
    assert shooter.capture("/index.html").blank is False
    assert shooter.capture("/quality/blank.html", format="jpeg").blank is True
    assert shooter.capture("/index.html", format="pdf").blank is None


def test_retry_if_blank_catches_a_late_rendering_page(shooter: Shooter) -> None:
    first = shooter.capture("/quality/late-render.html")
    assert first.blank is True and count(picture(first), RED) == 0 and not first.notes
    retried = shooter.capture("/quality/late-render.html", retry_if_blank=True)
    assert retried.blank is False
    assert count(picture(retried), RED) == 600 * 400
    assert retried.notes and "retry_if_blank" in retried.notes[0]
    # Still blank after the second try: reported, not failed.
    still = shooter.capture("/quality/blank.html", retry_if_blank=True)
    assert still.blank is True and "still blank" in still.notes[0]


def test_the_cache_never_keeps_a_blank_result(redis_url: str) -> None:
    async def run() -> None:
        redis = create_redis(redis_url)
        store = StatusStore(redis, ttl_seconds=600)
        cache = ResultCache(redis, store, index_ttl_seconds=600)
        try:
            for blank, url in ((True, "https://blank.example/"), (False, "https://ok.example/")):
                options = CaptureOptions(url=url)
                job_id = new_job_id()
                await store.create(Job(id=job_id, status=JobStatus.queued, created_at=utcnow(),
                                       options=options))
                assert await cache.lead_or_join("anon", options_digest(options), job_id) is None
                result = StoredResult(key="results/x.png", content_type="image/png", bytes=3,
                                      sha256="0" * 64, blank=blank)
                job = await store.mark_succeeded(job_id, result)
                assert job is not None
                await cache.finished(job)
                hit = await cache.lookup("anon", options_digest(options), max_age=60)
                assert (hit is None) is blank
        finally:
            await redis.aclose()

    asyncio.run(run())

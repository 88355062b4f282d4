"""The picture comparison of monitor runs on real images drawn with Pillow: exact boxes for
real changes, nothing for anti-aliasing shifts, a diff image with the boxes outlined."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from shared.jobs import ImageFormat
from shared.monitors.models import Region
from worker.engines.blank import is_blank
from worker.monitor_diff import HIGHLIGHT, OUTLINE, compare, decode


def page(draw_extra: object = None, *, size: tuple[int, int] = (400, 300),
         line_x: int = 50) -> bytes:
    image = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.text((20, 20), "Pricing: $10 per month", fill=(20, 20, 20))
    draw.line((line_x, 100, line_x + 200, 180), fill=(0, 0, 120), width=3)
    if callable(draw_extra):
        draw_extra(draw)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_identical_pictures_do_not_differ() -> None:
    result = compare(page(), page())
    assert result.changed_ratio == 0 and result.regions == [] and result.diff_png is None


def test_a_changed_block_is_boxed_exactly() -> None:
    after = page(lambda d: d.rectangle((120, 200, 219, 239), fill=(200, 30, 30)))
    result = compare(page(), after)
    assert result.regions == [Region(x=120, y=200, width=100, height=40)]
    assert result.changed_ratio == 100 * 40 / (400 * 300)
    assert result.hash_distance >= 0
    assert result.diff_png is not None
    diff = decode(result.diff_png)
    # The outline sits just outside the box, all around it; outside the outline the page is
    # as it was, inside the box the new block shows through the tint.
    for x, y in ((118, 198), (221, 241), (170, 198), (170, 240), (118, 220), (220, 220)):
        assert diff.getpixel((x, y)) == HIGHLIGHT, (x, y)
    assert diff.getpixel((170, 200 - OUTLINE - 1)) == (250, 250, 250)
    assert diff.getpixel((170, 220)) == ((200 + 255) // 2, 30 // 2, 30 // 2)


def test_text_changes_are_found_and_two_far_changes_are_two_regions() -> None:
    def edit(draw: ImageDraw.ImageDraw) -> None:
        draw.rectangle((20, 20, 200, 35), fill=(250, 250, 250))
        draw.text((20, 20), "Pricing: $12 per month", fill=(20, 20, 20))
        draw.rectangle((350, 260, 369, 279), fill=(0, 0, 0))

    result = compare(page(), page(edit))
    assert len(result.regions) == 2
    text, square = result.regions
    assert text.x >= 20 and text.x + text.width <= 200 and 20 <= text.y <= 35
    assert square == Region(x=350, y=260, width=20, height=20)


def test_a_one_pixel_shift_is_anti_aliasing_not_a_change() -> None:
    result = compare(page(line_x=50), page(line_x=51))
    assert result.regions == [] and result.changed_ratio == 0


def test_a_taller_page_counts_its_new_part_as_changed() -> None:
    result = compare(page(), page(size=(400, 320)))
    assert result.regions == [Region(x=0, y=300, width=400, height=20)]


def test_blank_pictures_are_recognised_by_the_capture_s_detector() -> None:
    # Monitors use the engine's detector (worker.engines.blank), the one result.blank holds.
    flat = io.BytesIO()
    Image.new("RGB", (50, 50), (255, 255, 255)).save(flat, format="PNG")
    assert is_blank(flat.getvalue(), ImageFormat.png)
    assert not is_blank(page(), ImageFormat.png)

"""Compares a monitor run's picture with its baseline: what changed, where, and a picture of it.

Hand-written on numpy and scipy rather than a diff library: pixelmatch's Python port loops
over pixels in Python (seconds per screenshot), and the libraries that are fast compare
whole images (SSIM, perceptual hashes) without saying *where*. The method:

1. A pixel differs when any channel moved by more than :data:`CHANNEL_TOLERANCE`.
2. Anti-aliasing tolerance: a differing pixel is ignored when each picture has, within one
   pixel of it, a pixel of the other's colour (an edge drawn a sub-pixel further, text
   antialiased differently). A real change (new text, another colour) has no such match.
3. Changed pixels closer than :data:`MERGE_DISTANCE` are grouped (scipy.ndimage.label on
   the dilated mask); each group's box is the exact bounding box of its changed pixels.
4. The diff image is the new picture with changed pixels tinted red and each box outlined
   in red just outside it.

imagehash's perceptual hash is recorded beside it (``hash_distance``: 0 for pictures a
person would call the same), and byte-identical pictures skip the comparison entirely.
Masked elements need nothing here: they are painted one flat colour at capture
(:func:`shared.monitors.runs.mask_css`), so they never differ.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import imagehash
import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage

from shared.monitors.models import Region

#: Largest per-channel change (0-255) that still counts as the same colour.
CHANNEL_TOLERANCE = 16
#: Changed pixels this close (in pixels) belong to one region.
MERGE_DISTANCE = 8
#: Colour of the highlight and the outlines in the diff image.
HIGHLIGHT = (255, 0, 0)
#: Width of a region's outline in the diff image, drawn outside the region.
OUTLINE = 2

Pixels = npt.NDArray[np.int16]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Comparison:
    """How a picture compares with its baseline."""

    changed_ratio: float
    regions: list[Region] = field(default_factory=list)
    hash_distance: int = 0
    #: The diff image (PNG), when anything changed.
    diff_png: bytes | None = None


def decode(data: bytes) -> Image.Image:
    """``data`` as an RGB image (transparent areas over white)."""
    image = Image.open(io.BytesIO(data))
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def compare(before: bytes, after: bytes) -> Comparison:
    """Compare ``after`` with ``before`` (both encoded images); see the module docstring."""
    if hashlib.sha256(before).digest() == hashlib.sha256(after).digest():
        return Comparison(changed_ratio=0.0)
    old_image, new_image = decode(before), decode(after)
    distance = int(imagehash.phash(old_image) - imagehash.phash(new_image))
    old = np.asarray(old_image, dtype=np.int16)
    new = np.asarray(new_image, dtype=np.int16)
    changed = changed_pixels(old, new)
    total = changed.size
    count = int(changed.sum())
    if count == 0:
        return Comparison(changed_ratio=0.0, hash_distance=distance)
    regions = changed_regions(changed)
    return Comparison(changed_ratio=count / total, regions=regions, hash_distance=distance,
                      diff_png=diff_image(new_image, changed, regions))


def changed_pixels(old: Pixels, new: Pixels) -> Mask:
    """Pixels of ``new`` that changed, on ``new``'s size (rows or columns ``old`` lacks count
    as changed), anti-aliasing tolerated."""
    height, width = new.shape[:2]
    common_h, common_w = min(height, old.shape[0]), min(width, old.shape[1])
    changed = np.ones((height, width), dtype=bool)
    a, b = old[:common_h, :common_w], new[:common_h, :common_w]
    differs = _far(a, b)
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if rows.size:
        # Only the box around the differing pixels (one pixel of margin for neighbours).
        y0, y1 = max(0, int(rows[0]) - 1), min(common_h, int(rows[-1]) + 2)
        x0, x1 = max(0, int(cols[0]) - 1), min(common_w, int(cols[-1]) + 2)
        wa, wb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
        differs[y0:y1, x0:x1] &= ~(_near_match(wb, wa) & _near_match(wa, wb))
    changed[:common_h, :common_w] = differs
    return changed


def _far(a: Pixels, b: Pixels) -> Mask:
    diff: Pixels = np.abs(a - b)
    far: Mask = diff.max(axis=2) > CHANNEL_TOLERANCE
    return far


def _near_match(image: Pixels, other: Pixels) -> Mask:
    """True where ``other`` has ``image``'s colour at the same pixel or a neighbour."""
    padded = np.pad(other, ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    found = np.zeros((height, width), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            found |= ~_far(image, padded[dy:dy + height, dx:dx + width])
    return found


def changed_regions(changed: Mask) -> list[Region]:
    """Bounding boxes of the groups of changed pixels, top to bottom."""
    grouped = ndimage.binary_dilation(changed, iterations=MERGE_DISTANCE // 2)
    labels, _ = ndimage.label(grouped)
    regions = []
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        inside = changed[box] & (labels[box] == number)
        rows = np.flatnonzero(inside.any(axis=1))
        cols = np.flatnonzero(inside.any(axis=0))
        if rows.size == 0:
            continue
        top, left = box[0].start + int(rows[0]), box[1].start + int(cols[0])
        regions.append(Region(x=left, y=top, width=int(cols[-1] - cols[0]) + 1,
                              height=int(rows[-1] - rows[0]) + 1))
    return sorted(regions, key=lambda r: (r.y, r.x))


def diff_image(new: Image.Image, changed: Mask, regions: list[Region]) -> bytes:
    """``new`` with changed pixels tinted and each region outlined (PNG)."""
    pixels = np.asarray(new, dtype=np.uint16).copy()
    tint = np.array(HIGHLIGHT, dtype=np.uint16)
    pixels[changed] = (pixels[changed] + tint) // 2
    out = pixels.astype(np.uint8)
    height, width = changed.shape
    for r in regions:
        top, left = max(0, r.y - OUTLINE), max(0, r.x - OUTLINE)
        bottom, right = min(height, r.y + r.height + OUTLINE), min(width, r.x + r.width + OUTLINE)
        out[top:r.y, left:right] = HIGHLIGHT
        out[r.y + r.height:bottom, left:right] = HIGHLIGHT
        out[top:bottom, left:r.x] = HIGHLIGHT
        out[top:bottom, r.x + r.width:right] = HIGHLIGHT
    buffer = io.BytesIO()
    Image.fromarray(out, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()

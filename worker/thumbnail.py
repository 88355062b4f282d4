"""``thumbnail_width``: scale a captured image down, whatever engine took it."""

from __future__ import annotations

import io

from PIL import Image

from shared.jobs import ImageFormat

#: Pillow's format name per image format.
PILLOW_FORMATS = {ImageFormat.png: "PNG", ImageFormat.jpeg: "JPEG", ImageFormat.webp: "WEBP"}

#: Quality of re-encoded JPEG/WebP when the request gave none (Chromium's default too).
DEFAULT_QUALITY = 80


def thumbnail(data: bytes, fmt: ImageFormat, width: int, *, quality: int | None = None) -> bytes:
    """``data`` scaled to ``width`` pixels wide (aspect ratio kept), in the same format.

    Images already at most ``width`` wide are returned unchanged; transparency is kept.
    """
    if fmt is ImageFormat.pdf:
        raise ValueError("PDFs have no thumbnail")
    with Image.open(io.BytesIO(data)) as image:
        if image.width <= width:
            return data
        height = max(1, round(image.height * width / image.width))
        scaled = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if fmt is ImageFormat.png:
        scaled.save(out, "PNG", optimize=False, compress_level=6)
    else:
        if fmt is ImageFormat.jpeg and scaled.mode not in ("RGB", "L"):
            scaled = scaled.convert("RGB")
        scaled.save(out, PILLOW_FORMATS[fmt], quality=quality or DEFAULT_QUALITY)
    return out.getvalue()

"""A scroll video's poster frame: its first frame scaled to ``thumbnail_width``, stored
beside the video (``results/<job>.poster.jpeg``)."""

from __future__ import annotations

import io

from PIL import Image

from shared.constants import RESULTS_PREFIX
from shared.jobs import ImageFormat, Job, StoredFile
from shared.storage.destinations import Placement
from worker.thumbnail import thumbnail


def poster_key(job: Job, prefix: str = "") -> str:
    """Storage key of ``job``'s poster frame (under the same prefix as its video)."""
    return f"{prefix}{RESULTS_PREFIX}{job.id}.poster.jpeg"


async def store_poster(placement: Placement, job: Job, frame: bytes, width: int) -> StoredFile:
    """Scale the JPEG ``frame`` down to ``width`` and store it where the video goes."""
    data = thumbnail(frame, ImageFormat.jpeg, width)
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    key = poster_key(job, placement.prefix)
    await placement.put(key, data, content_type=ImageFormat.jpeg.content_type)
    return StoredFile(key=key, content_type=ImageFormat.jpeg.content_type, bytes=len(data),
                      width=size[0], height=size[1])

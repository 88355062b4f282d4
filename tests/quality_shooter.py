"""A module-scoped Chromium engine for the capture-quality tests, with picture helpers."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from PIL import Image

from shared.jobs import CaptureOptions
from tests.servers import LOOPBACK_POLICY, PageServer
from worker.engines.base import Capture
from worker.engines.chromium import ChromiumEngine


async def test_names(host: str, port: int) -> list[IPv4Address | IPv6Address]:
    """Resolves every ``*.test`` name to 127.0.0.1 (pages on "other sites" of the page
    server, e.g. ``http://news.test:PORT/`` and ``http://adserver.test:PORT/``); nothing else."""
    if host == "localhost" or host.endswith(".test"):
        return [ip_address("127.0.0.1")]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


class Shooter:
    """Captures local pages (tests/pages) with one engine on one event loop."""

    def __init__(self, engine: ChromiumEngine, runner: asyncio.Runner, pages: PageServer) -> None:
        self.engine, self.runner, self.pages = engine, runner, pages

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """``path`` on the page server, under ``host`` (any ``*.test`` name reaches it)."""
        return f"http://{host}:{self.pages.port}{path}"

    def capture(self, path: str, *, host: str = "127.0.0.1", **fields: Any) -> Capture:
        """Capture ``path`` of the page server (a 20 s timeout unless given)."""
        url = path if path.startswith("http") else self.url(path, host)
        options = CaptureOptions(url=url, **{"timeout_ms": 20000, **fields})
        return self.runner.run(self.engine.capture(options))

    def image(self, path: str, *, host: str = "127.0.0.1", **fields: Any) -> Image.Image:
        """The picture of :meth:`capture`, decoded as RGB."""
        return picture(self.capture(path, host=host, **fields))


def shooter_on(pages: PageServer) -> Iterator[Shooter]:
    """A started engine for a module fixture; closed (no browser left) afterwards."""
    with asyncio.Runner() as runner:
        engine = ChromiumEngine(policy=LOOPBACK_POLICY, resolver=test_names,
                                max_result_bytes=50_000_000)
        runner.run(engine.start())
        try:
            yield Shooter(engine, runner, pages)
        finally:
            runner.run(engine.aclose())


def picture(capture: Capture) -> Image.Image:
    """The capture's picture, decoded as RGB."""
    image = Image.open(io.BytesIO(capture.data))
    image.load()
    return image.convert("RGB")


def count(image: Image.Image, color: tuple[int, int, int]) -> int:
    """How many pixels of ``image`` are exactly ``color``."""
    colors = image.convert("RGB").getcolors(maxcolors=100_000_000) or []
    return sum(n for n, c in colors if c == color)

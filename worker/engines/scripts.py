"""The JavaScript the ``chromium`` engine runs in pages, kept as files in ``js/`` (each
file is one function expression, as ``page.evaluate`` takes it) and read once.

``js/driver_preload.js`` is the exception: Node.js loads it into Playwright's driver
(:mod:`worker.engines.driver_signals`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

SCRIPTS_DIR: Final = Path(__file__).parent / "js"


@functools.cache
def page_script(name: str) -> str:
    """The source of ``js/<name>`` (read once per process)."""
    return (SCRIPTS_DIR / name).read_text(encoding="utf-8")

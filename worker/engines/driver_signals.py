"""Playwright's driver outlives a SIGTERM sent to the worker's whole process group.

``kill -TERM -PGID`` (and systemd's default ``KillMode=control-group``) signals every
process of the worker at once. Only Celery's main process should act on it (a warm
shutdown: running captures finish). Playwright's driver, a Node.js child of the process
that runs the captures, would end at once (Node's default), and Chromium with it; with
Playwright's ``handleSIGTERM``/``handleSIGINT``/``handleSIGHUP`` launch options on (their
default) it closes the browser itself. So the driver is started with a preload that
ignores SIGTERM and SIGHUP (``js/driver_preload.js``; SIGINT it ignores by itself), and
Chromium is launched with those options off: the browser ends when the worker closes it,
or when the driver ends because the worker died (its stdin closes).

Playwright reads the driver's environment from ``os.environ`` when it starts the driver,
with no way to pass one: :func:`driver_environment` sets ``NODE_OPTIONS`` there for the
moment of the start and restores it right after.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Final

from worker.engines.scripts import SCRIPTS_DIR

#: The preload that makes the driver ignore SIGTERM and SIGHUP.
DRIVER_PRELOAD: Final = SCRIPTS_DIR / "driver_preload.js"


@contextlib.contextmanager
def driver_environment() -> Iterator[None]:
    """``NODE_OPTIONS`` with the preload, for the driver started inside this block."""
    previous = os.environ.get("NODE_OPTIONS")
    # Node reads NODE_OPTIONS with double quotes and backslash escapes, as JSON writes them.
    preload = f"--require={json.dumps(str(DRIVER_PRELOAD))}"
    os.environ["NODE_OPTIONS"] = f"{previous} {preload}" if previous else preload
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("NODE_OPTIONS", None)
        else:
            os.environ["NODE_OPTIONS"] = previous

"""Running the workers as root (``make dev`` in a container or on a fresh VM).

Celery warns on every worker start as root ("absolutely not recommended"), once per worker
process, so ``shotline dev`` printed it twice. Root is what Celery forbids outright only
with pickle, which Shotline never accepts (JSON messages only); Chromium, for its part,
drops its sandbox as root (``CHROMIUM_NO_SANDBOX`` auto). So ``shotline worker`` says that
once, in its own words, and silences Celery's version.
"""

from __future__ import annotations

import os
import sys
import warnings

from celery.exceptions import SecurityWarning

#: Said once per ``shotline worker`` started as root.
ROOT_NOTE = (
    "Running the workers as root: accepted because they take JSON messages only (never"
    " pickle), but Chromium then runs without its sandbox. On a shared machine or a server,"
    " run `shotline worker` as an unprivileged user."
)


def accept_root(*, announce: bool) -> None:
    """As root, silence Celery's superuser warning, saying :data:`ROOT_NOTE` instead when
    ``announce``; otherwise do nothing."""
    if os.geteuid() != 0:
        return
    warnings.filterwarnings("ignore", message="You're running the worker with superuser",
                            category=SecurityWarning)
    if announce:
        print(ROOT_NOTE, file=sys.stderr, flush=True)

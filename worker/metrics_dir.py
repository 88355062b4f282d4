"""prometheus_client's multiprocess mode for the worker's prefork pool: where the files go.

Every pool child writes its metric values to files of its own in one directory, and the
worker's main process sums them when Prometheus scrapes it (:mod:`worker.exporter`).
prometheus_client decides between in-memory and file-backed values when it is first
imported, from the ``PROMETHEUS_MULTIPROC_DIR`` environment variable, so
:func:`prepare_metrics_dir` must run before anything imports it: ``worker.app`` calls it
first thing, and the pool's children inherit the variable when they fork.

This module must not import prometheus_client.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Final

from shared.errors import ConfigurationError
from shared.settings import Settings

#: The environment variable prometheus_client reads its multiprocess directory from.
MULTIPROC_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir(settings: Settings) -> Path | None:
    """A fresh private directory for the pool's metric files, set as prometheus_client's
    multiprocess directory; ``None`` (nothing changed) when the exporter is off.

    Raises:
        ConfigurationError: prometheus_client was imported already, so the pool would
            count in memory and the exporter would see nothing.
    """
    if settings.worker_metrics_port == 0:
        return None
    if "prometheus_client" in sys.modules:
        raise ConfigurationError(
            "prometheus_client was imported before the worker's metrics directory was set"
        )
    path = Path(tempfile.mkdtemp(prefix="shotline-worker-metrics-"))
    os.environ[MULTIPROC_DIR_VARIABLE] = str(path)
    return path


def remove_metrics_dir(path: Path) -> None:
    """Delete the directory (at worker shutdown: its counts die with the worker)."""
    shutil.rmtree(path, ignore_errors=True)

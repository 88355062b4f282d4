"""``shotline worker`` as root (``make dev`` in a container): one note saying why that is
accepted, not Celery's superuser warning once per worker process."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ProcessFactory
from tests.procs import wait_for
from worker.root import ROOT_NOTE


@pytest.mark.skipif(os.geteuid() != 0, reason="the note is about running as root")
def test_running_as_root_is_explained_once(processes: ProcessFactory) -> None:
    _process, log_path = processes.cli_worker()  # capture worker + webhook worker beside it
    # The webhook worker starts beside the capture worker: wait until it is ready too.
    assert wait_for(lambda: log_path.read_text().count("ready.") >= 2, timeout=60), \
        log_path.read_text()[-3000:]
    log = log_path.read_text()
    assert log.count(ROOT_NOTE) == 1, log[-3000:]
    assert "superuser privileges" not in log, log[-3000:]

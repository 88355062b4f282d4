"""The one command each for install and tests: what ``make test`` runs, and an editable
install without setuptools' warning box."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT, child_env


def _dry_run(*args: str) -> str:
    done = subprocess.run(["make", "-n", *args], cwd=REPO_ROOT, env=child_env({}),
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_prints_durations_passes_pytest_args_and_leaves_slow_runs_out() -> None:
    loop = _dry_run("test", "PYTEST_ARGS=-x -k webhook")
    assert '.venv/bin/pytest --durations=20 -m "not slow" -x -k webhook' in loop, loop
    slow = _dry_run("test-slow")
    assert ".venv/bin/pytest --durations=20 -m slow" in slow, slow


@pytest.mark.slow
def test_an_editable_install_shows_no_warning_box(tmp_path: Path) -> None:
    """setuptools warns ("Editable installation… be careful with folders in your working
    directory") when it has to install an import hook; the declared flat layout gets a plain
    .pth file instead."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    done = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "install",
         "--disable-pip-version-check", "--no-deps", "-e", str(REPO_ROOT)],
        env=child_env({}), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "Editable installation" not in output and "be careful" not in output, output[-3000:]
    [pth] = (tmp_path / "venv").glob("lib/python*/site-packages/__editable__.shotline-*.pth")
    assert pth.read_text().strip() == str(REPO_ROOT)

"""The architecture the folders show holds in the imports: the API never loads worker code."""

from __future__ import annotations

import subprocess
import sys


def test_the_api_app_imports_no_worker_module() -> None:
    code = ("import sys; from shared.settings import Settings; from api.app import build_services;"
            " build_services(Settings(_env_file=None)); import api.main;"
            " print(sorted(m for m in sys.modules if m == 'worker' or m.startswith('worker.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True, env={"SHOTLINE_ENGINE": "snapapi", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout

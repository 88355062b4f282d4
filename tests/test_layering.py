"""The architecture the folders show holds in the imports: the API never loads worker code,
the workers never import the API, and ``shared`` imports neither."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_api_app_imports_no_worker_module() -> None:
    code = ("import sys; from shared.settings import Settings; from api.app import build_services;"
            " build_services(Settings(_env_file=None)); import api.main;"
            " print(sorted(m for m in sys.modules if m == 'worker' or m.startswith('worker.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True, env={"SHOTLINE_ENGINE": "snapapi", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout


def imported_packages(path: Path) -> set[str]:
    """The top-level packages ``path`` imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(("package", "forbidden"), [
    ("worker", {"api"}),  # what both need lives in shared/
    ("shared", {"api", "worker"}),  # shared is what both import, and imports neither
])
def test_a_package_never_imports_the_layers_it_must_not_know(package: str,
                                                              forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden)
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported_packages(path) & forbidden
    }
    assert offenders == {}

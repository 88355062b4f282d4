"""Print the project's runtime dependencies from pyproject.toml, one per line, for the image
builds: ``python requirements.py [--without NAME,...] > requirements.txt``.

Installing these before copying the source keeps the dependency layer cached across code
changes. ``--without`` drops worker-only packages from the API image (Playwright alone is
about 165 MB, with its Node driver).
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: Path, *, without: Iterable[str] = ()) -> list[str]:
    """The ``[project] dependencies`` of ``pyproject`` and its ``server`` extra (the client
    alone needs only the former), minus the distributions ``without``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    dependencies: list[str] = [*project["dependencies"],
                               *project.get("optional-dependencies", {}).get("server", [])]
    skipped = {_normalise(name) for name in without}
    kept = []
    for dependency in dependencies:
        match = _NAME.match(dependency)
        if match is None or _normalise(match.group(1)) not in skipped:
            kept.append(dependency)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--without", default="", help="comma-separated distribution names")
    args = parser.parse_args()
    without = {name.strip() for name in args.without.split(",") if name.strip()}
    print("\n".join(requirements(args.pyproject, without=without)))


if __name__ == "__main__":
    main()

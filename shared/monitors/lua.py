"""Loads the monitors' Redis scripts from the ``.lua`` files beside this module."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def script(name: str) -> str:
    """The text of ``<name>.lua``."""
    return files("shared.monitors").joinpath(f"{name}.lua").read_text(encoding="utf-8")

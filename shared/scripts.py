"""The one loader of Shotline's Redis Lua scripts.

Each script is a ``.lua`` file in the ``lua/`` folder beside the module that runs it
(``shared/lua/status_transition.lua`` for :mod:`shared.status_store`). A line
``--! include NAME.lua`` is replaced by that file's text, looked up beside the script first,
then in ``shared/lua/`` (the Lua functions several scripts share, such as ``now()``); that
is the only composition, so every script reads whole from its file(s).
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files
from importlib.resources.abc import Traversable

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

_INCLUDE = re.compile(r"^--! include (\S+)$", re.MULTILINE)


def _folder(module: str) -> Traversable:
    package = module.rpartition(".")[0] or module
    return files(package) / "lua"


@functools.cache
def script_source(module: str, name: str) -> str:
    """The text of script ``name`` beside ``module`` (a module's ``__name__``), includes
    expanded (each at most once)."""
    folders = (_folder(module), _folder(__name__))
    seen: set[str] = set()

    def read(file_name: str) -> str:
        for folder in folders:
            path = folder / file_name
            if path.is_file():
                return _INCLUDE.sub(lambda m: include(m.group(1)), path.read_text())
        raise FileNotFoundError(f"no Lua script {file_name} beside {module} nor in shared/lua")

    def include(file_name: str) -> str:
        if file_name in seen:
            return ""
        seen.add(file_name)
        return read(file_name).rstrip("\n")

    return read(f"{name}.lua")


def load_script(redis: aioredis.Redis, module: str, name: str) -> AsyncScript:
    """Script ``name`` (``lua/<name>.lua`` beside ``module``) registered on ``redis``."""
    return redis.register_script(script_source(module, name))

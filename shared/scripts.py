"""The one loader of Shotline's Redis Lua scripts.

Each script is a ``.lua`` file in the ``lua/`` folder beside the module that runs it
(``shared/lua/status_transition.lua`` for :mod:`shared.status_store`). A line
``--! include NAME.lua`` is replaced by that file's text, looked up beside the script first,
then in ``shared/lua/`` (the Lua functions several scripts share, such as ``now()``); that
is the only composition, so every script reads whole from its file(s).

:func:`run_scripts` sends several registered scripts in one round trip (the API's rate limit
and idempotency lookup of a request).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

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


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One run of a registered script: its keys and arguments."""

    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[str | int | float | bytes]


async def run_scripts(redis: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run ``calls`` in order in one round trip (a pipeline of ``EVALSHA``, not a
    transaction: each script is atomic on its own) and return their answers.

    redis-py's own way (a script called on a pipeline) first asks ``SCRIPT EXISTS``, a
    second round trip each time; here a script the server does not know (its first run
    since a restart or ``SCRIPT FLUSH``) answers ``NOSCRIPT`` and is then loaded and run on
    its own, so each call runs exactly once (that one then after the calls behind it: only
    the first time after a flush). Any other error is raised.
    """
    async with redis.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        replies = await pipe.execute(raise_on_error=False)
    answers: list[Any] = []
    for call, reply in zip(calls, replies, strict=True):
        if isinstance(reply, NoScriptError):
            reply = await call.script(keys=list(call.keys), args=list(call.args))
        elif isinstance(reply, Exception):
            raise reply
        answers.append(reply)
    return answers

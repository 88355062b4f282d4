"""Command-line options generated from the API's request model, so the CLI offers every
request field (and every field added later) under the same name, bounds and help.

``@request_options(ScreenshotRequest, skip={"url"})`` adds one option per model field:
``dark_mode`` → ``--dark-mode/--no-dark-mode``, ``format`` → ``--format [png|jpeg|...]``,
``hide_selectors`` → ``--hide-selectors SEL`` (repeatable), structured fields (``headers``,
``cookies``, ``pdf_options``...) → ``--cookies JSON``. :func:`given_options` returns only
what the command line set, so the model's (and the server's) defaults apply to the rest and
validation happens in one place, the model.

Hand-written rather than a click-pydantic library: the maintained ones generate a whole
command from a model (positional arguments, nested groups) and follow their own naming;
this needs plain ``--field-name`` options on existing commands, in about eighty lines.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import click
from click.core import ParameterSource
from pydantic import BaseModel
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])

#: Prefix of the click parameter names of generated options (kept apart from the command's own).
_PREFIX = "request__"


class JsonValue(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+ only
    """A JSON value on the command line (objects and arrays for structured fields)."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON ({exc.msg} at character {exc.pos}): {value!r}", param, ctx)


def _unwrap(annotation: Any) -> Any:
    """``X`` of ``X | None`` and of ``Annotated[X, ...]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _scalar_type(annotation: Any) -> Any:
    """The click type of a scalar field, None for a structured one."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return click.Choice([str(member.value) for member in annotation])
    if get_origin(annotation) is Literal and all(isinstance(a, str) for a in get_args(annotation)):
        return click.Choice(list(get_args(annotation)))
    scalars: dict[Any, Any] = {int: click.INT, float: click.FLOAT, str: click.STRING}
    return scalars.get(annotation)


def _help(field: FieldInfo, *, structured: bool) -> str:
    text = (field.description or "").rstrip(".")
    if structured:
        text += (". " if text else "") + "As JSON, as in the API's request body"
    elif not field.is_required():
        default = field.get_default(call_default_factory=True)
        if default not in (None, False, [], {}):
            shown = default.value if isinstance(default, enum.Enum) else default
            text += f" (default {shown})"
    return text


def _option(name: str, field: FieldInfo) -> Callable[[F], F]:
    flag = "--" + name.replace("_", "-")
    dest = _PREFIX + name
    annotation = _unwrap(field.annotation)
    if annotation is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", dest, default=None,
                            help=_help(field, structured=False))
    if get_origin(annotation) is list:
        item = _scalar_type(_unwrap(get_args(annotation)[0]))
        if item is not None:
            return click.option(flag, dest, type=item, multiple=True,
                                help=_help(field, structured=False) + " (repeatable)")
    scalar = _scalar_type(annotation)
    if scalar is not None:
        return click.option(flag, dest, type=scalar, default=None,
                            help=_help(field, structured=False))
    return click.option(flag, dest, type=JsonValue(), default=None,
                        help=_help(field, structured=True))


def request_options(model: type[BaseModel], *, skip: Iterable[str] = ()) -> Callable[[F], F]:
    """A decorator adding an option for each field of ``model`` but those in ``skip``
    (the ones the command takes otherwise, e.g. ``url`` as its argument)."""
    skipped = set(skip)

    def decorate(command: F) -> F:
        for name, field in reversed(model.model_fields.items()):
            if name not in skipped:
                command = _option(name, field)(command)
        return command

    return decorate


def given_options(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """The request fields the command line set (by name), popped from ``params``; the rest
    is left to the model's defaults."""
    given: dict[str, Any] = {}
    for dest in [key for key in params if key.startswith(_PREFIX)]:
        value = params.pop(dest)
        if ctx.get_parameter_source(dest) is ParameterSource.DEFAULT or value in (None, ()):
            continue
        given[dest.removeprefix(_PREFIX)] = list(value) if isinstance(value, tuple) else value
    return given

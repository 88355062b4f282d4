"""``shotline monitors …``: scheduled captures on a (remote) Shotline API; prints JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import BaseModel

from shared.errors import ShotlineError
from shotline.monitors import Monitors

_api = click.option("--api", "api_url", envvar="SHOTLINE_API_URL",
                    default="http://127.0.0.1:8000", show_default=True,
                    help="Base URL of the Shotline API (env SHOTLINE_API_URL).")
_key = click.option("--key", "api_key", envvar=["SHOTLINE_API_KEY", "SHOTLINE_KEY"],
                    default=None, help="API key (env SHOTLINE_API_KEY or SHOTLINE_KEY).")


@contextmanager
def _monitors(api_url: str, api_key: str | None) -> Iterator[Monitors]:
    from shotline.client import Client

    try:
        with Client(api_url, api_key=api_key) as client:
            yield client.monitors
    except ShotlineError as exc:  # API errors print as "code: message (request id)"
        raise click.ClickException(str(exc)) from exc


def _echo(model: BaseModel | None) -> None:
    if model is not None:
        click.echo(model.model_dump_json())


def _by_id(action: Callable[[Monitors, str], BaseModel | None], doc: str) -> click.Command:
    @click.argument("monitor_id")
    @_api
    @_key
    def command(monitor_id: str, api_url: str, api_key: str | None) -> None:
        with _monitors(api_url, api_key) as monitors:
            _echo(action(monitors, monitor_id))

    command.__doc__ = doc
    return click.command()(command)


@click.group()
def monitors() -> None:
    """Scheduled captures compared with the last good one."""


@monitors.command("create")
@click.argument("url")
@click.option("--every", "interval", type=int, default=None,
              help="Run every this many seconds (default 3600 without --cron).")
@click.option("--cron", default=None, help="A five-field cron expression, e.g. '0 * * * *'.")
@click.option("--timezone", default="UTC", show_default=True, help="Time zone of --cron.")
@click.option("--threshold", type=float, default=None,
              help="Share of pixels (0-1) that must change to count as a change.")
@click.option("--mask", "mask_selectors", multiple=True,
              help="CSS selector of a region to ignore (repeatable).")
@click.option("--hide", "hide_selectors", multiple=True,
              help="CSS selector of an element to remove before capture (repeatable).")
@click.option("--webhook", "webhook_url", default=None, help="Where monitor events go.")
@click.option("--notify-on", type=click.Choice(["change", "every", "failure"]), default=None)
@click.option("--name", default=None)
@click.option("--full-page", is_flag=True)
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@_api
@_key
def create(url: str, interval: int | None, cron: str | None, timezone: str,
           threshold: float | None, mask_selectors: tuple[str, ...],
           hide_selectors: tuple[str, ...], webhook_url: str | None, notify_on: str | None,
           name: str | None, full_page: bool, width: int | None, height: int | None,
           api_url: str, api_key: str | None) -> None:
    """Watch URL on a schedule; prints the monitor."""
    capture: dict[str, Any] = {k: v for k, v in (("width", width), ("height", height)) if v}
    if full_page:
        capture["full_page"] = True
    fields: dict[str, Any] = {k: v for k, v in (
        ("threshold", threshold), ("webhook_url", webhook_url), ("notify_on", notify_on),
        ("name", name)) if v is not None}
    if mask_selectors:
        fields["mask_selectors"] = list(mask_selectors)
    if hide_selectors:
        fields["hide_selectors"] = list(hide_selectors)
    if interval is None and cron is None:
        interval = 3600
    with _monitors(api_url, api_key) as client:
        _echo(client.create(url, interval_seconds=interval, cron=cron, timezone=timezone,
                            capture=capture, **fields))


@monitors.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--cursor", default=None, help="next_cursor of the previous page.")
@_api
@_key
def list_(limit: int, cursor: str | None, api_url: str, api_key: str | None) -> None:
    """This key's monitors, oldest first."""
    with _monitors(api_url, api_key) as client:
        _echo(client.list(limit=limit, cursor=cursor))


@monitors.command("runs")
@click.argument("monitor_id")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--cursor", default=None, help="next_cursor of the previous page.")
@_api
@_key
def runs(monitor_id: str, limit: int, cursor: str | None, api_url: str,
         api_key: str | None) -> None:
    """A monitor's runs, newest first."""
    with _monitors(api_url, api_key) as client:
        _echo(client.runs(monitor_id, limit=limit, cursor=cursor))


monitors.add_command(_by_id(lambda m, i: m.get(i), "One monitor."), "get")
monitors.add_command(_by_id(lambda m, i: m.run(i), "Run a monitor now."), "run")
monitors.add_command(_by_id(lambda m, i: m.pause(i), "Pause a monitor."), "pause")
monitors.add_command(_by_id(lambda m, i: m.resume(i), "Resume a monitor."), "resume")
monitors.add_command(_by_id(lambda m, i: m.delete(i), "Delete a monitor."), "delete")

"""The ``shotline`` command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from shared.jobs import CaptureOptions, ImageFormat
from shared.logging import configure_logging
from shared.settings import Settings, get_settings


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@click.group()
@click.version_option(package_name="shotline")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Shotline: screenshots of web pages as a service."""
    ctx.obj = get_settings()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def api(ctx: click.Context, host: str, port: int) -> None:
    """Run the HTTP API."""
    import uvicorn

    from api.app import create_app

    settings = _settings(ctx)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None,
                proxy_headers=True, access_log=False)


_QUEUE_ALIASES = {"capture": "capture", "shotline.capture": "capture",
                  "webhooks": "webhooks", "shotline.webhooks": "webhooks"}


def _parse_queues(value: str) -> set[str]:
    names = {part.strip() for part in value.split(",") if part.strip()}
    unknown = sorted(names - _QUEUE_ALIASES.keys())
    if unknown or not names:
        raise click.BadParameter(f"choose from capture, webhooks (got {value!r})")
    return {_QUEUE_ALIASES[name] for name in names}


@main.command()
@click.option("--concurrency", "-c", type=int, default=None,
              help="Capture processes (default SHOTLINE_WORKER_CONCURRENCY, i.e. the CPU count);"
              " with --queues webhooks alone, deliveries in flight.")
@click.option("--queues", "-Q", default="capture,webhooks", show_default=True,
              help="What to work on: capture, webhooks, or both (a capture worker plus a"
              " webhook worker process beside it, so slow endpoints never hold a capture slot).")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, queues: str) -> None:
    """Run Celery workers that capture queued jobs and deliver their webhooks."""
    from shared.constants import CAPTURE_QUEUE, WEBHOOK_QUEUE
    from worker.app import app

    settings = _settings(ctx)
    wanted = _parse_queues(queues)
    common = ["--loglevel", settings.log_level, "--without-gossip", "--without-mingle"]
    if wanted == {"webhooks"}:
        # Deliveries wait on the network: threads, with one event loop shared by all.
        app.worker_main(argv=["worker", *common, "-Q", WEBHOOK_QUEUE, "--pool", "threads",
                              "--concurrency", str(concurrency or settings.webhook_concurrency),
                              "--hostname", "webhooks@%h"])
        return
    argv = ["worker", *common, "-Q", CAPTURE_QUEUE,
            "--concurrency", str(concurrency or settings.worker_concurrency)]
    if "webhooks" not in wanted:
        app.worker_main(argv=argv)
        return
    from shotline.devstack import child_process

    with child_process([sys.executable, "-m", "shotline.cli", "worker", "--queues", "webhooks"]):
        app.worker_main(argv=argv)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes.")
@click.pass_context
def dev(ctx: click.Context, host: str, port: int, concurrency: int | None) -> None:
    """Run everything locally: Redis (when needed), a worker and the API. Ctrl-C stops all."""
    import uvicorn

    from api.app import create_app
    from shotline.devstack import local_redis, worker_process

    settings = _settings(ctx)
    configure_logging(level=settings.log_level, fmt="console")
    with local_redis(settings) as redis_url:
        settings = settings.model_copy(update={"redis_url": redis_url})
        with worker_process(redis_url, concurrency):
            base = f"http://{host}:{port}"
            click.echo(f"\nShotline is up: API {base}  docs {base}/docs\n"
                       f"  curl -s -X POST {base}/v1/screenshots -H 'Content-Type: application/json'"
                       " -d '{\"url\": \"https://example.com\"}'\n")
            uvicorn.run(create_app(settings), host=host, port=port, log_config=None,
                        access_log=False)


@main.command()
@click.argument("url")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--format", "fmt", type=click.Choice([f.value for f in ImageFormat]), default=None,
              help="Output format (default: from the file name, else png).")
@click.option("--full-page", is_flag=True)
@click.option("--width", type=int, default=1280, show_default=True)
@click.option("--height", type=int, default=800, show_default=True)
@click.pass_context
def capture(ctx: click.Context, url: str, output: Path, fmt: str | None, full_page: bool,
            width: int, height: int) -> None:
    """Capture URL into a file, in this process (no queue, no Redis)."""
    from pydantic import ValidationError

    from shared.errors import ShotlineError
    from shared.url_policy import UrlPolicy
    from worker.engines import make_engine

    settings = _settings(ctx)
    configure_logging(level="WARNING", fmt="console")
    if fmt is None:
        suffix = output.suffix.lower().lstrip(".").replace("jpg", "jpeg")
        fmt = suffix if suffix in {f.value for f in ImageFormat} else "png"
    try:
        options = CaptureOptions(url=url, format=ImageFormat(fmt), full_page=full_page,
                                 width=width, height=height)
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc

    async def run() -> bytes:
        await UrlPolicy.from_settings(settings).acheck_url(options.url)
        engine = make_engine(settings)
        await engine.start()
        try:
            return (await engine.capture(options)).data
        finally:
            await engine.aclose()

    try:
        data = asyncio.run(run())
    except ShotlineError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    output.write_bytes(data)
    click.echo(f"Wrote {len(data)} bytes to {output}", err=True)


if __name__ == "__main__":
    sys.exit(main())

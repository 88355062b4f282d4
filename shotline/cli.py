"""The ``shotline`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from shared.apikeys import KeyStore
from shared.jobs import CaptureOptions, ImageFormat, JobStatus
from shared.logging import configure_logging
from shared.settings import Settings, get_settings

T = TypeVar("T")


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
    if "public_base_url" not in settings.model_fields_set and host not in ("0.0.0.0", "::"):
        # Local download links point at this API, whatever port it was given.
        settings = settings.model_copy(update={"public_base_url": f"http://{host}:{port}"})
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
              help="Captures at once (default SHOTLINE_WORKER_CONCURRENCY: the CPU count for"
              " the chromium engine's processes, SNAPAPI_MAX_CONCURRENCY threads up to 64 for"
              " snapapi's); with --queues webhooks alone, deliveries in flight.")
@click.option("--queues", "-Q", default="capture,webhooks", show_default=True,
              help="What to work on: capture, webhooks, or both (a capture worker plus a"
              " webhook worker process beside it, so slow endpoints never hold a capture slot).")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, queues: str) -> None:
    """Run Celery workers that capture queued jobs (releasing them fairly between API keys,
    sweeping stuck ones) and deliver webhooks."""
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
    argv = ["worker", *common, "-Q", CAPTURE_QUEUE, "--pool", settings.effective_worker_pool,
            "--concurrency", str(concurrency or settings.effective_worker_concurrency)]
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
    from shotline.devstack import ensure_dev_key, local_redis, worker_process

    settings = _settings(ctx)
    configure_logging(level=settings.log_level, fmt="console")
    base = f"http://{host}:{port}"
    if "public_base_url" not in settings.model_fields_set:
        # Download links point at this API, whatever port it was given.
        settings = settings.model_copy(update={"public_base_url": base})
    with local_redis(settings) as redis_url:
        settings = settings.model_copy(update={"redis_url": redis_url})
        key_file = ensure_dev_key(settings) if settings.auth != "off" else None
        with worker_process(redis_url, concurrency,
                            shutdown_timeout=settings.shutdown_timeout_seconds,
                            public_base_url=settings.public_base_url):
            auth = ""
            if key_file is not None:
                click.echo(f"\nDevelopment API key: {key_file.read_text().strip()}"
                           f" (kept in {key_file})\n"
                           f"  export SHOTLINE_KEY=$(cat {key_file})")
                auth = ' -H "Authorization: Bearer $SHOTLINE_KEY"'
            click.echo(f"\nShotline is up: API {base}  docs {base}/docs\n"
                       f"  curl -s -X POST {base}/v1/screenshots{auth}"
                       " -H 'Content-Type: application/json'"
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


@main.command()
@click.argument("url")
@click.option("--api", "api_url", envvar="SHOTLINE_API_URL", default="http://127.0.0.1:8000",
              show_default=True, help="Base URL of the Shotline API (env SHOTLINE_API_URL).")
@click.option("--key", "api_key", envvar=["SHOTLINE_API_KEY", "SHOTLINE_KEY"], default=None,
              help="API key, sent as a Bearer token (env SHOTLINE_API_KEY or SHOTLINE_KEY).")
@click.option("--wait", "wait_for_it", is_flag=True, help="Wait for the job to finish.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Download the result into this file (implies --wait).")
@click.option("--format", "fmt", type=click.Choice([f.value for f in ImageFormat]), default=None,
              help="Output format (default: from the file name, else the server's png).")
@click.option("--full-page", is_flag=True)
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds to wait for the job.")
def submit(url: str, api_url: str, api_key: str | None, wait_for_it: bool, output: Path | None,
           fmt: str | None, full_page: bool, width: int | None, height: int | None,
           timeout: float) -> None:
    """Capture URL on a (remote) Shotline API; prints the job as JSON."""
    from shared.errors import ShotlineError
    from shotline.client import Client

    if fmt is None and output is not None:
        suffix = output.suffix.lower().lstrip(".").replace("jpg", "jpeg")
        fmt = suffix if suffix in {f.value for f in ImageFormat} else None
    options: dict[str, Any] = {name: value for name, value in
               (("format", fmt), ("width", width), ("height", height)) if value is not None}
    if full_page:
        options["full_page"] = True
    try:
        with Client(api_url, api_key=api_key) as client:
            accepted = client.submit(url, **options)
            if not (wait_for_it or output):
                click.echo(accepted.model_dump_json())
                return
            job = client.wait(accepted, timeout=timeout)
            click.echo(job.model_dump_json())
            if job.status is JobStatus.failed:
                error = f"{job.error.code}: {job.error.message}" if job.error else "no error recorded"
                raise click.ClickException(f"job {job.id} failed ({error})")
            if output is not None:
                data = client.download(job)
                output.write_bytes(data)
                click.echo(f"Wrote {len(data)} bytes to {output}", err=True)
    except ShotlineError as exc:  # API errors print as "code: message (request id)"
        raise click.ClickException(str(exc)) from exc


@main.group()
def blocklist() -> None:
    """The ad/tracker host list and cookie-banner rules used by the chromium engine."""


@blocklist.command("update")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the data files (default: the engine's data folder).")
@click.option("--hosts-tarball", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Use this npm tarball of @ghostery/trackerdb instead of npm.")
@click.option("--consent-tarball", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Use this npm tarball of @duckduckgo/autoconsent instead of npm.")
def blocklist_update(output_dir: Path | None, hosts_tarball: Path | None,
                     consent_tarball: Path | None) -> None:
    """Fetch the latest lists from npm and rebuild blocklist.json and consent_rules.json."""
    from shared.errors import ShotlineError
    from shotline.blocklists import update

    if output_dir is None:
        output_dir = Path(__file__).resolve().parent.parent / "worker" / "engines" / "data"
    try:
        written = update(output_dir, hosts_tarball=hosts_tarball, consent_tarball=consent_tarball)
    except ShotlineError as exc:
        raise click.ClickException(exc.message) from exc
    for name, source in written.items():
        click.echo(f"{output_dir / name}: {source['package']} {source['version']}"
                   f" ({source['license']})")


def _run_keys(settings: Settings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    """Run ``action`` with a key store on the configured Redis (or, when none is configured,
    the one a running ``shotline dev`` started); errors as CLI errors."""
    from shared.composition import build_key_store
    from shared.errors import ShotlineError
    from shotline.devstack import dev_redis_url

    async def run() -> T:
        store = build_key_store(settings, redis_url=dev_redis_url(settings))
        try:
            return await action(store)
        finally:
            await store.redis.aclose()

    try:
        return asyncio.run(run())
    except ShotlineError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc


@main.group()
def keys() -> None:
    """Manage API keys (stored hashed in Redis; a key is shown only when created)."""


@keys.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"id","key","webhook_secret",...}.')
@click.option("--rate-limit", default=None, help="This key's rate, e.g. 600/minute.")
@click.option("--monthly-quota", type=click.IntRange(min=0), default=None,
              help="Captures this key may start per month.")
@click.pass_context
def keys_create(ctx: click.Context, name: str, as_json: bool, rate_limit: str | None,
                monthly_quota: int | None) -> None:
    """Create an API key called NAME and print it (the only time it is shown)."""
    if rate_limit is not None:
        from limits import parse

        try:
            parse(rate_limit)
        except ValueError as exc:
            raise click.BadParameter(f"not a rate like 60/minute: {rate_limit}") from exc
    new = _run_keys(_settings(ctx), lambda store: store.create(
        name, rate_limit=rate_limit, monthly_quota=monthly_quota))
    record = new.record
    if as_json:
        click.echo(json.dumps({"id": record.id, "key": new.key,
                               "webhook_secret": record.webhook_secret,
                               "signing_secret": record.signing_secret}))
        return
    click.echo(f"Created API key {record.id} ({record.name}). Keep these now; they are not"
               " shown again:\n"
               f"  key:            {new.key}\n"
               f"  webhook secret: {record.webhook_secret}\n"
               f"  signing secret: {record.signing_secret}  (signs /v1/render links)")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """List API keys (never the keys themselves)."""
    records = _run_keys(_settings(ctx), lambda store: store.list_keys())
    rows = [{"id": r.id, "name": r.name, "created_at": _iso(r.created_at),
             "revoked_at": _iso(r.revoked_at), "rate_limit": r.rate_limit,
             "monthly_quota": r.monthly_quota} for r in records]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        click.echo(f"{row['id']}  {row['name']:<24} created {row['created_at']}  {state}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the key KEY_ID for good: requests with it get 401 from now on."""
    record = _run_keys(_settings(ctx), lambda store: store.revoke(key_id))
    click.echo(f"Revoked API key {record.id} ({record.name}).")


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds") if timestamp else None


if __name__ == "__main__":
    sys.exit(main())

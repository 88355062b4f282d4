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
from shotline.cli_monitors import monitors
from shotline.cli_options import given_options, request_options
from shotline.models import ScreenshotRequest

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


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
@click.option("--root-noted", is_flag=True, hidden=True,
              help="The parent already said why running as root is accepted.")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, queues: str, root_noted: bool) -> None:
    """Run Celery workers that capture queued jobs (releasing them fairly between API keys,
    sweeping stuck ones) and deliver webhooks."""
    from shared.constants import CAPTURE_QUEUE, WEBHOOK_QUEUE
    from worker.app import app
    from worker.root import accept_root

    accept_root(announce=not root_noted)
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

    with child_process([sys.executable, "-m", "shotline.cli", "worker", "--queues", "webhooks",
                        "--root-noted"]):
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


#: Request fields given as files (--html FILE, --markdown FILE) or --base-url, not as generated
#: options.
DOCUMENT_OPTIONS = frozenset({"url", "html", "markdown", "base_url"})


def document_fields(url: str | None, html_file: Path | None, markdown_file: Path | None,
                    base_url: str | None) -> dict[str, str]:
    """The request's input from the command line: URL, or the text of an --html or
    --markdown file (UTF-8), with --base-url; exactly one of the three."""
    given = [name for name, value in (("URL", url), ("--html", html_file),
                                      ("--markdown", markdown_file)) if value is not None]
    if len(given) != 1:
        raise click.UsageError(f"give exactly one of URL, --html FILE or --markdown FILE"
                               f" (got {' and '.join(given) or 'none'})")
    fields: dict[str, str] = {} if base_url is None else {"base_url": base_url}
    if url is not None:
        return {"url": url, **fields}
    name, path = ("html", html_file) if html_file is not None else ("markdown", markdown_file)
    assert path is not None
    try:
        return {name: path.read_text(encoding="utf-8"), **fields}
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"{path} is not UTF-8 text: {exc}") from exc


def _format_from(output: Path | None) -> str | None:
    """The format an output file's name asks for (``shot.jpg`` → jpeg), if any."""
    if output is None:
        return None
    suffix = output.suffix.lower().lstrip(".").replace("jpg", "jpeg")
    return suffix if suffix in {f.value for f in ImageFormat} else None


def _invalid_options(exc: Exception) -> click.UsageError:
    """A pydantic ValidationError as a usage error naming the options."""
    from pydantic import ValidationError

    assert isinstance(exc, ValidationError)
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        where = "--" + loc[0].replace("_", "-") + "".join(f".{part}" for part in loc[1:]) \
            if loc else "options"
        problems.append(f"{where}: {error['msg']}")
    return click.UsageError("; ".join(problems))


def document_options(command: F) -> F:
    """``--html``, ``--markdown`` and ``--base-url``: a document to render instead of a URL
    (``capture`` and ``submit`` alike)."""
    path = click.Path(exists=True, dir_okay=False, path_type=Path)
    command = click.option("--base-url", default=None,
                           help="Base URL of the document's relative links.")(command)
    command = click.option("--markdown", "markdown_file", type=path, default=None,
                           help="Render this Markdown file instead of a URL.")(command)
    return click.option("--html", "html_file", type=path, default=None,
                        help="Render this HTML file instead of a URL.")(command)


@main.command()
@click.argument("url", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@document_options
@request_options(CaptureOptions, skip=DOCUMENT_OPTIONS)
@click.pass_context
def capture(ctx: click.Context, /, url: str | None, output: Path, html_file: Path | None,
            markdown_file: Path | None, base_url: str | None, **params: Any) -> None:
    """Capture URL (or an --html / --markdown file) into a file, in this process (no queue,
    no Redis).

    Every request field of the API is an option (``--dark-mode``, ``--device iphone-15``,
    ``--wait-for-selector``...); ``--format`` defaults to the file name's, else png.
    """
    from pydantic import ValidationError

    from shared.errors import ShotlineError
    from shared.inputs import check_input
    from shared.url_policy import UrlPolicy
    from worker.engines import make_engine

    settings = _settings(ctx)
    configure_logging(level="WARNING", fmt="console")
    given = given_options(ctx, params)
    given.setdefault("format", _format_from(output) or ImageFormat.png.value)
    try:
        options = CaptureOptions.model_validate(
            {**document_fields(url, html_file, markdown_file, base_url), **given})
    except ValidationError as exc:
        raise _invalid_options(exc) from exc

    async def run() -> bytes:
        await check_input(UrlPolicy.from_settings(settings), options,
                          max_html_bytes=settings.max_html_bytes)
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
@click.argument("url", required=False)
@click.option("--api", "api_url", envvar="SHOTLINE_API_URL", default="http://127.0.0.1:8000",
              show_default=True, help="Base URL of the Shotline API (env SHOTLINE_API_URL).")
@click.option("--key", "api_key", envvar=["SHOTLINE_API_KEY", "SHOTLINE_KEY"], default=None,
              help="API key, sent as a Bearer token (env SHOTLINE_API_KEY or SHOTLINE_KEY).")
@click.option("--wait", "wait_for_it", is_flag=True, help="Wait for the job to finish.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Download the result into this file (implies --wait).")
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds to wait for the job.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the API's answer (the job record once waited for) as JSON.")
@document_options
@request_options(ScreenshotRequest, skip=DOCUMENT_OPTIONS)
@click.pass_context
def submit(ctx: click.Context, /, url: str | None, api_url: str, api_key: str | None,
           wait_for_it: bool, output: Path | None, timeout: float, as_json: bool,
           html_file: Path | None, markdown_file: Path | None, base_url: str | None,
           **params: Any) -> None:
    """Capture URL (or an --html / --markdown file) on a (remote) Shotline API; prints a
    short summary (--json: the record).

    Every request field of the API is an option (``--full-page``, ``--device``, ``--retries``,
    ``--webhook-url``...); ``--format`` defaults to the output file name's.
    """
    from pydantic import ValidationError

    from shared.errors import ShotlineError
    from shotline.client import Client
    from shotline.summary import describe_accepted, describe_job

    options = given_options(ctx, params)
    if "format" not in options and _format_from(output) is not None:
        options["format"] = _format_from(output)
    try:
        request = ScreenshotRequest.model_validate(
            {**document_fields(url, html_file, markdown_file, base_url), **options})
    except ValidationError as exc:
        raise _invalid_options(exc) from exc
    try:
        with Client(api_url, api_key=api_key) as client:
            accepted = client.submit(request)
            if not (wait_for_it or output):
                click.echo(accepted.model_dump_json() if as_json else describe_accepted(accepted))
                return
            job = client.wait(accepted, timeout=timeout)
            click.echo(job.model_dump_json() if as_json else describe_job(job))
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
    """The filter lists (EasyList, EasyPrivacy) and cookie-banner rules of the chromium engine."""


@blocklist.command("update")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the data files (default: the engine's data folder).")
@click.option("--easylist", metavar="URL_OR_FILE", default=None,
              help="EasyList from this URL or file (default: https://easylist.to/easylist/easylist.txt).")
@click.option("--easyprivacy", metavar="URL_OR_FILE", default=None,
              help="EasyPrivacy from this URL or file "
                   "(default: https://easylist.to/easylist/easyprivacy.txt).")
@click.option("--from-debian", is_flag=True,
              help="Take both lists from Debian's webext-ublock-origin-chromium package (offline).")
@click.option("--consent-tarball", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Use this npm tarball of @duckduckgo/autoconsent instead of npm.")
@click.option("--skip-consent-rules", is_flag=True,
              help="Leave consent_rules.json as it is (no npm needed).")
def blocklist_update(output_dir: Path | None, easylist: str | None, easyprivacy: str | None,
                     from_debian: bool, consent_tarball: Path | None,
                     skip_consent_rules: bool) -> None:
    """Refresh EasyList, EasyPrivacy and the consent rules, and rebuild the data files."""
    from shared.errors import ShotlineError
    from shotline.blocklists import DEBIAN_LISTS, update

    if output_dir is None:
        output_dir = Path(__file__).resolve().parent.parent / "worker" / "engines" / "data"
    sources: dict[str, str] = {}
    if from_debian:
        sources = {"ads": str(DEBIAN_LISTS / "easylist.txt"),
                   "trackers": str(DEBIAN_LISTS / "easyprivacy.txt")}
    if easylist is not None:
        sources["ads"] = easylist
    if easyprivacy is not None:
        sources["trackers"] = easyprivacy
    try:
        written = update(output_dir, list_sources=sources, consent_tarball=consent_tarball,
                         consent_rules=not skip_consent_rules)
    except ShotlineError as exc:
        raise click.ClickException(exc.message) from exc
    for name, source in written.items():
        origin = source.get("fetched_from") or f"{source.get('package')} {source.get('version')}"
        click.echo(f"{output_dir / name}: {origin} ({source['license']})")


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
             "monthly_quota": r.monthly_quota, "retention_seconds": r.retention_seconds,
             "storage": _storage_of(r.storage_destination)} for r in records]
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


@keys.command("set-retention")
@click.argument("key_id")
@click.option("--seconds", type=click.IntRange(min=1), default=None,
              help="Delete this key's results this long after their capture.")
@click.option("--default", "use_default", is_flag=True,
              help="Back to the server's SHOTLINE_RESULT_RETENTION_SECONDS.")
@click.pass_context
def keys_set_retention(ctx: click.Context, key_id: str, seconds: int | None,
                       use_default: bool) -> None:
    """How long the results of KEY_ID's new captures are kept before they are deleted."""
    if (seconds is None) == (not use_default):
        raise click.UsageError("give exactly one of --seconds N or --default")
    record = _run_keys(_settings(ctx), lambda store: store.set_retention(key_id, seconds))
    kept = f"{record.retention_seconds} s" if record.retention_seconds else "the server's default"
    click.echo(f"API key {record.id} ({record.name}): new results are kept {kept}.")


@keys.command("set-storage")
@click.argument("key_id")
@click.option("--bucket", required=True, help="The bucket the key's results go to.")
@click.option("--endpoint-url", default=None,
              help="S3-compatible server (MinIO, R2...); none: AWS S3.")
@click.option("--region", default=None, help="The bucket's region (default us-east-1).")
@click.option("--prefix", default="", help="Key prefix inside the bucket, e.g. shots/.")
@click.option("--access-key-id", envvar="SHOTLINE_BUCKET_ACCESS_KEY_ID", default=None,
              help="Access key of the bucket (env SHOTLINE_BUCKET_ACCESS_KEY_ID); none: the"
              " workers' own (role-based) credentials.")
@click.option("--secret-access-key", envvar="SHOTLINE_BUCKET_SECRET_ACCESS_KEY", default=None,
              help="Its secret (env SHOTLINE_BUCKET_SECRET_ACCESS_KEY; prompted for when missing).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Check that the bucket answers (HeadBucket) with these credentials.")
@click.pass_context
def keys_set_storage(ctx: click.Context, key_id: str, bucket: str, endpoint_url: str | None,
                     region: str | None, prefix: str, access_key_id: str | None,
                     secret_access_key: str | None, check: bool) -> None:
    """Write the results of KEY_ID's new captures to its own bucket (credentials stored
    encrypted; the endpoint must pass the URL policy)."""
    from pydantic import SecretStr, ValidationError

    from shared.storage.credentials import BucketCredentials, CredentialCipher
    from shared.storage.destinations import Destination

    settings = _settings(ctx)
    if access_key_id and not secret_access_key:
        secret_access_key = click.prompt("Secret access key", hide_input=True)
    if secret_access_key and not access_key_id:
        raise click.UsageError("--secret-access-key needs --access-key-id")
    token = None
    if access_key_id and secret_access_key:
        token = CredentialCipher.from_settings(settings).encrypt(BucketCredentials(
            access_key_id=SecretStr(access_key_id), secret_access_key=SecretStr(secret_access_key)))
    try:
        destination = Destination(bucket=bucket, endpoint_url=endpoint_url, region=region,
                                  prefix=prefix, credentials=token)
    except ValidationError as exc:
        messages = "; ".join(str(error["msg"]) for error in exc.errors())
        raise click.BadParameter(messages) from None
    _check_destination(settings, destination, head_bucket=check)
    record = _run_keys(settings, lambda store: store.set_storage(
        key_id, destination.model_dump_json()))
    click.echo(f"API key {record.id} ({record.name}): new results go to s3://{bucket}/"
               f"{destination.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
               + ("" if token else " with the workers' own credentials"))


@keys.command("clear-storage")
@click.argument("key_id")
@click.pass_context
def keys_clear_storage(ctx: click.Context, key_id: str) -> None:
    """Send KEY_ID's new results to the server's storage again (and forget its credentials)."""
    record = _run_keys(_settings(ctx), lambda store: store.set_storage(key_id, None))
    click.echo(f"API key {record.id} ({record.name}): new results go to the server's storage.")


def _check_destination(settings: Settings, destination: Any, *, head_bucket: bool) -> None:
    """The URL policy on the destination's endpoint, then (with ``head_bucket``) HeadBucket;
    a CLI error naming the bucket otherwise (never the credentials)."""
    from shared.errors import ShotlineError
    from shared.storage.credentials import CredentialCipher
    from shared.storage.destinations import StorageRouter, check_endpoint
    from shared.storage.local import LocalStorage
    from shared.url_policy import UrlPolicy

    async def run() -> None:
        policy = UrlPolicy.from_settings(settings)
        await check_endpoint(policy, destination)
        if not head_bucket:
            return
        router = StorageRouter(LocalStorage(settings.data_dir, "", b"unused"),
                               cipher=lambda: CredentialCipher.from_settings(settings),
                               policy=policy)
        try:
            await router.for_destination(destination).check()
        finally:
            await router.aclose()

    try:
        asyncio.run(run())
    except ShotlineError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None


def _storage_of(destination_json: str | None) -> str | None:
    """Where a key's results go, as ``keys list`` shows it (no credentials)."""
    if not destination_json:
        return None
    destination = json.loads(destination_json)
    return f"s3://{destination['bucket']}/{destination.get('prefix', '')}"

main.add_command(monitors)


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds") if timestamp else None


if __name__ == "__main__":
    sys.exit(main())

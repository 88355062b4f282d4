"""``shotline capture`` and ``shotline submit`` take every request field of the API as an
option, generated from the same pydantic models (so a new field is an option at once), and
``submit`` prints a short summary unless asked for ``--json``."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any, Literal

import click
import pytest
from click.testing import CliRunner
from PIL import Image
from pydantic import BaseModel

from shared.jobs import CaptureOptions, ScreenshotRequest
from shotline.cli import capture, submit
from shotline.cli_options import given_options, request_options
from tests.conftest import ProcessFactory
from tests.servers import REPO_ROOT, PageServer, child_env, python_command

CLI = ("-m", "shotline.cli")
BLUE = (0, 0, 255)


def _option_names(command: click.Command) -> set[str]:
    return {opt.lstrip("-").replace("-", "_") for param in command.params for opt in param.opts}


@pytest.mark.parametrize(("command", "model"), [(capture, CaptureOptions),
                                                (submit, ScreenshotRequest)])
def test_every_request_field_is_an_option(command: click.Command,
                                          model: type[BaseModel]) -> None:
    fields = set(model.model_fields) - {"url"}  # URL is the argument
    assert fields <= _option_names(command), fields - _option_names(command)


class _FutureFields(BaseModel):
    """Shapes of fields other issues add: the generator must turn each into an option."""

    url: str
    content: list[Literal["html", "text", "markdown"]] = []
    engine_hint: Literal["fast", "faithful"] | None = None
    scroll: CaptureOptions | None = None
    retry_if_blank: bool = False
    wait_for_function: str | None = None


def test_new_kinds_of_fields_become_options() -> None:
    @click.command()
    @request_options(_FutureFields, skip={"url"})
    @click.pass_context
    def command(ctx: click.Context, /, **params: Any) -> None:
        click.echo(json.dumps(given_options(ctx, params), sort_keys=True))

    done = CliRunner().invoke(command, [
        "--content", "html", "--content", "markdown", "--engine-hint", "fast",
        "--scroll", '{"url": "https://example.com"}', "--retry-if-blank",
        "--wait-for-function", "window.ready === true"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {
        "content": ["html", "markdown"], "engine_hint": "fast",
        "scroll": {"url": "https://example.com"}, "retry_if_blank": True,
        "wait_for_function": "window.ready === true"}
    refused = CliRunner().invoke(command, ["--content", "pdf"])
    assert refused.exit_code == 2 and "'pdf' is not one of" in refused.output
    assert json.loads(CliRunner().invoke(command, []).output) == {}  # nothing given, nothing sent


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(python_command(*CLI, *args), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=90,
                          env=child_env({"SHOTLINE_ALLOWED_NETWORKS": "127.0.0.0/8", **(env or {})}))


def test_capture_takes_request_options(tmp_path: Path, page_server: PageServer) -> None:
    output = tmp_path / "phone.png"
    done = _run("capture", page_server.url("/index.html"), "-o", str(output),
                "--device", "iphone-se", "--no-full-page", "--hide-selectors", "#box",
                "--css", "html, body { background: rgb(0, 0, 255) !important; }",
                "--headers", '{"X-From-Cli": "yes"}')
    assert done.returncode == 0, done.stderr
    with Image.open(io.BytesIO(output.read_bytes())) as image:
        assert image.size == (750, 1334)  # iphone-se: 375 x 667 CSS px at 2x
        rgb = image.convert("RGB")
        assert rgb.getpixel((5, 5)) == BLUE
        assert rgb.getpixel((200, 300)) == BLUE  # the red #box is hidden
    seen = [headers for path, headers in page_server.headers_seen if path == "/index.html"]
    assert seen and seen[-1].get("X-From-Cli") == "yes"


def test_capture_names_the_bad_option(tmp_path: Path, page_server: PageServer) -> None:
    done = _run("capture", page_server.url("/index.html"), "-o", str(tmp_path / "x.png"),
                "--width", "50")
    assert done.returncode == 2, done.stderr
    assert "--width: Input should be greater than or equal to 100" in done.stderr
    bad_json = _run("capture", page_server.url("/index.html"), "-o", str(tmp_path / "x.png"),
                    "--cookies", "[{name: 1}")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    module_processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    return module_processes.api()


def test_submit_prints_a_summary_by_default_and_json_when_asked(
    base: str, page_server: PageServer, tmp_path: Path
) -> None:
    url = page_server.url("/index.html")
    queued = _run("submit", url, "--api", base, "--width", "400", "--height", "300")
    assert queued.returncode == 0, queued.stderr
    first, second = queued.stdout.splitlines()
    assert re.fullmatch(r"Job [0-9a-f]{32} queued\.", first), queued.stdout
    assert second.strip().startswith(f"status: {base}/v1/jobs/")

    output = tmp_path / "shot.webp"
    waited = _run("submit", url, "--api", base, "--width", "400", "--height", "300",
                  "--dark-mode", "-o", str(output))
    assert waited.returncode == 0, waited.stderr
    lines = waited.stdout.splitlines()
    assert re.fullmatch(rf"Job [0-9a-f]{{32}} succeeded in [0-9.]+ s: {re.escape(url)}", lines[0])
    assert lines[1].strip() == "result: image/webp 400x300, " + lines[1].split(", ")[1]
    assert lines[2].strip().startswith("download: http")
    assert len(waited.stdout) < 600  # not one very long JSON line

    as_json = _run("submit", url, "--api", base, "--wait", "--json", "--retries", "2")
    record = json.loads(as_json.stdout)
    assert record["status"] == "succeeded" and record["options"]["retries"] == 2

    failed = _run("submit", page_server.url("/status/404"), "--api", base, "--wait")
    assert failed.returncode == 1
    assert "failed" in failed.stdout and "error: http_error:" in failed.stdout

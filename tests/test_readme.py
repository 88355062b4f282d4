"""Every code block of README.md runs, as written, so the README cannot drift.

The blocks run in README order, as a reader would paste them, against what ``shotline dev``
runs: a real API, ``shotline worker`` (capture and webhook workers) and Redis, with the
development API key in ``data/dev-api-key`` of the reader's working directory. Shell state
(``export SHOTLINE_KEY=…``) carries over from block to block; Python blocks get that
environment too. Before each block, the jobs of the blocks before it have ended (a reader
waits for them).

What is rewritten before a block runs, so any new block works without touching this file:

- ``https://example.com``, ``https://example.org`` (any path) → a local test page;
  ``https://hooks.example.com/…`` → a local webhook receiver;
- ``127.0.0.1:8000`` and ``localhost:8000`` → the API under test;
- ``.venv/bin/`` → the virtual environment running the tests;
- ``3b0d…`` in a ``curl`` argument → the id of the job the README submitted last with curl.

Every ``curl`` reports its HTTP status; any 4xx or 5xx fails the block unless the block
shows it in a comment (``# 422 …``). ``sh``/``bash``/``shell`` blocks run under
``bash -eo pipefail``, ``python`` blocks under this interpreter. A block that cannot run
here says why on the line before its fence, ``<!-- not run by tests: REASON -->``; a
``text`` block is not code. Any other block fails :func:`test_every_block_runs_or_says_why`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from shotline.devstack import ensure_dev_key
from tests.conftest import ProcessFactory
from tests.servers import REPO_ROOT, PageServer, child_env
from tests.webhook_receiver import WebhookReceiver

README = REPO_ROOT / "README.md"
SKIP_MARKER = re.compile(r"<!--\s*not run by tests:\s*(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
SHELLS = {"sh", "bash", "shell"}
#: Stands for "the id of the job you just submitted" in the README's curl lines.
JOB_PLACEHOLDER = "3b0d…"
BIN_DIR = Path(sys.executable).parent

#: Runs before each shell block: state from the blocks before, a curl that reports statuses.
PREAMBLE = rf"""
set -eo pipefail
trap 'env -0 > "$README_STATE/env"' EXIT
curl() {{
  local job args=() arg
  job=$(grep -o '"id":"[0-9a-f]\{{32\}}"' "$README_STATE/bodies" 2>/dev/null \
        | tail -1 | cut -d'"' -f4 || true)
  for arg in "$@"; do args+=("${{arg//{JOB_PLACEHOLDER}/$job}}"); done
  command curl -w '%{{stderr}}README-HTTP %{{http_code}} %{{url_effective}}\n' "${{args[@]}}" \
    | tee -a "$README_STATE/bodies"
}}
"""


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'no language'})"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text``, each with the reason of a marker on the line before."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        marker = SKIP_MARKER.search(lines[index - 1]) if index > 0 else None
        blocks.append(Block(index + 1, fence["lang"], "\n".join(lines[index + 1:end]),
                            marker["reason"] if marker else None))
        index = end + 1
    return blocks


def test_every_block_runs_or_says_why() -> None:
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 10
    for block in blocks:
        if block.skip_reason is not None:
            assert len(block.skip_reason) >= 10, f"{block.where}: say why it is not run"
        else:
            assert block.lang in SHELLS | {"python", "text"}, (
                f"{block.where}: the tests cannot run this block; mark it with"
                " <!-- not run by tests: REASON --> on the line before")


def test_the_parser_sees_markers_and_languages() -> None:
    blocks = readme_blocks("intro\n<!-- not run by tests: needs a GPU cluster -->\n```sh\nx\n```\n"
                           "```python\nprint(1)\n```\n")
    assert [(b.line, b.lang, b.code, b.skip_reason) for b in blocks] == [
        (3, "sh", "x", "needs a GPU cluster"), (6, "python", "print(1)", None)]


@dataclass
class Reader:
    """Where and against what the README's blocks run."""

    base: str
    key: str
    workdir: Path
    state: Path
    page_url: str
    receiver: WebhookReceiver

    def localize(self, code: str) -> str:
        host_port = self.base.removeprefix("http://")
        code = re.sub(r"https?://hooks\.example\.com[^\s\"'\]),]*", self.receiver.url("/shotline"),
                      code)
        code = re.sub(r"https?://example\.(?:com|org)[^\s\"'\]),]*", self.page_url, code)
        code = re.sub(r"(?:localhost|127\.0\.0\.1):8000", host_port, code)
        return code.replace(".venv/bin/", f"{BIN_DIR}/")

    def environment(self) -> dict[str, str]:
        saved = self.state / "env"
        if not saved.exists():
            # The CLI's and the client's default API (127.0.0.1:8000) is the one under test.
            return child_env({"README_STATE": str(self.state), "SHOTLINE_API_URL": self.base})
        pairs = (item.split("=", 1) for item in saved.read_text().split("\0") if "=" in item)
        return {name: value for name, value in pairs}

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until no job of the development key is queued or running."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"},
                          timeout=30) as client:
            while True:
                jobs = client.get("/v1/jobs", params={"limit": 100}).raise_for_status().json()
                if all(job["status"] in ("succeeded", "failed") for job in jobs["jobs"]):
                    return
                assert time.monotonic() < deadline, f"jobs still running: {jobs}"
                time.sleep(0.2)


@pytest.fixture(scope="module")
def reader(module_processes: ProcessFactory, module_env: dict[str, str],
           page_server: PageServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    values: dict[str, Any] = {
        name.removeprefix("SHOTLINE_").lower(): value for name, value in module_env.items()}
    settings = Settings(_env_file=None, **values)
    key_file = ensure_dev_key(settings)  # as `shotline dev` does on its first start
    module_processes.cli_worker()  # capture + webhook workers, as `shotline dev` runs them
    base = module_processes.api()
    workdir = tmp_path_factory.mktemp("reader")
    (workdir / "data").mkdir()
    shutil.copy(key_file, workdir / "data" / "dev-api-key")
    state = tmp_path_factory.mktemp("readme-state")
    with WebhookReceiver() as receiver:
        yield Reader(base=base, key=key_file.read_text().strip(), workdir=workdir, state=state,
                     page_url=page_server.url("/index.html"), receiver=receiver)


def _run(reader: Reader, block: Block) -> str | None:
    """Run ``block``; a description of what went wrong, or None."""
    code = reader.localize(block.code)
    if block.lang in SHELLS:
        command = ["bash", "-c", PREAMBLE + code]
    else:
        script = reader.workdir / f"block_{block.line}.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    try:
        done = subprocess.run(command, cwd=reader.workdir, env=reader.environment(),
                              capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return f"{block.where}: still running after 180 s"
    tail = (done.stdout[-1500:] + "\n" + done.stderr[-2500:]).strip()
    if done.returncode != 0:
        return f"{block.where}: exit status {done.returncode}\n{tail}"
    allowed = {int(status) for status in re.findall(r"#\s*(\d{3})\b", block.code)}
    refused = [line for line in done.stderr.splitlines() if line.startswith("README-HTTP ")
               and int(line.split()[1]) >= 400 and int(line.split()[1]) not in allowed]
    if refused:
        return f"{block.where}: " + "; ".join(refused) + f"\n{tail}"
    return None


@pytest.mark.timeout(900)
def test_the_readme_blocks_run_as_written(reader: Reader) -> None:
    failures = []
    ran = 0
    for block in readme_blocks(README.read_text()):
        if block.skip_reason is not None or block.lang not in SHELLS | {"python"}:
            continue
        reader.settle()
        failure = _run(reader, block)
        ran += 1
        if failure is not None:
            failures.append(failure)
    assert not failures, "\n\n".join(failures)
    assert ran >= 8
    statuses = (reader.state / "bodies").read_text()
    assert '"status":"queued"' in statuses  # the curl lines did submit
    reader.settle()
    assert reader.receiver.wait_for(1, timeout=30)[0].headers.get("webhook-signature")

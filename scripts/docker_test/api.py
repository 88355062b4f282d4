"""The README's curl lines against the stack's API: submit, poll, download (the result
redirects to a presigned URL of the object store). Real ``curl``, printed as it runs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.docker_test.console import Shell, StepFailed, say

FINISHED = {"succeeded", "failed"}


@dataclass
class Api:
    """curl with the test's key against ``base_url``."""

    shell: Shell
    base_url: str
    key: str

    def _curl(self, *args: str, quiet: bool = False) -> str:
        completed = self.shell.run(["curl", "-sS", "--max-time", "30",
                                    "-H", f"Authorization: Bearer {self.key}", *args], quiet=quiet)
        return completed.stdout

    def submit(self, body: dict[str, Any], *, quiet: bool = False) -> str:
        """``POST /v1/screenshots``; the new job's id (202 expected)."""
        out = self._curl("-X", "POST", f"{self.base_url}/v1/screenshots",
                         "-H", "Content-Type: application/json", "-d", json.dumps(body),
                         "-w", "\n%{http_code}", quiet=quiet)
        text, _, status = out.rpartition("\n")
        if status != "202":
            raise StepFailed(f"submit answered {status}: {text}")
        job_id = str(json.loads(text)["id"])
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{id}``."""
        view: dict[str, Any] = json.loads(self._curl(f"{self.base_url}/v1/jobs/{job_id}", quiet=True))
        return view

    def wait(self, job_ids: list[str], *, timeout: float, statuses: set[str] = FINISHED
             ) -> dict[str, dict[str, Any]]:
        """Poll the jobs until each has one of ``statuses`` (the README's `until` loop)."""
        say(f"polling {len(job_ids)} job(s) until {'/'.join(sorted(statuses))} "
            f"(curl -s {self.base_url}/v1/jobs/ID every 0.5 s)")
        deadline = time.monotonic() + timeout
        views: dict[str, dict[str, Any]] = {}
        while True:
            views = {job_id: self.job(job_id) for job_id in job_ids}
            if all(view["status"] in statuses for view in views.values()):
                return views
            if time.monotonic() > deadline:
                now = {job_id: view["status"] for job_id, view in views.items()}
                raise StepFailed(f"jobs not {statuses} after {timeout:.0f} s: {now}")
            time.sleep(0.5)

    def download(self, job_id: str, target: Path) -> str:
        """``curl -L /v1/jobs/{id}/result -o target``; the URL the file finally came from."""
        out = self._curl("-L", "-o", str(target), "-w", "%{http_code} %{url_effective}",
                         f"{self.base_url}/v1/jobs/{job_id}/result")
        status, _, url = out.partition(" ")
        if status != "200":
            raise StepFailed(f"download of {job_id} answered {status} from {url}")
        return url

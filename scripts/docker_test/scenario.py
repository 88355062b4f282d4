"""The end-to-end steps against the running stack, in the README's order: a key, submit →
poll → download through the presigned URL (fonts checked in the picture), a PDF, a signed
webhook, Chromium's sandbox read from /proc, three capture workers, a warm ``compose stop``
during captures and a ``docker kill`` mid-capture (no job lost either time), ``down``."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from scripts.docker_test.api import Api
from scripts.docker_test.console import Shell, check, say, step
from scripts.docker_test.local_servers import LocalServers
from scripts.docker_test.probes import chromium_processes, font_problems, sandbox_problems
from scripts.docker_test.stack import Stack

#: A capture that stays running for a while (the page loads, then the worker waits).
SLOW_CAPTURE_MS = 6000
#: How long a step waits for its captures: generous, for a loaded shared machine (a new
#: worker's first capture waits for Chromium to start).
WAIT_SECONDS = 360


@dataclass
class Scenario:
    """What the steps share: the stack, the API, the local servers, the S3 address."""

    shell: Shell
    stack: Stack
    api: Api
    servers: LocalServers
    s3_url: str
    results: dict[str, Any]
    captures: int = 0

    def slow_capture(self, delay_ms: int = SLOW_CAPTURE_MS) -> dict[str, Any]:
        """A capture of its own: identical requests in flight share one capture, so each
        gets a distinct URL."""
        self.captures += 1
        return {"url": self.servers.page_url(f"/fidelity/fonts.html?n={self.captures}"),
                "width": 600, "height": 200, "delay_ms": delay_ms, "fresh": True}

    def running_on(self, service: str = "worker") -> dict[str, str]:
        """job id → name of the container whose log says it started the job."""
        found: dict[str, str] = {}
        for line in self.stack.logs(service).splitlines():
            if "job running" not in line:
                continue
            # compose prefixes each line with the service and replica ("worker-2").
            container = f"{self.stack.project}-{line.split('|', 1)[0].strip()}"
            for job_id in re.findall(r"[0-9a-f]{32}|[0-9a-f-]{36}", line):
                found[job_id] = container
        return found


def create_key(stack: Stack, shell: Shell) -> dict[str, str]:
    """``docker compose exec -T api shotline keys create docker-test --json`` (docs/deploy.md)."""
    out = stack.compose("exec", "-T", "api", "shotline", "keys", "create", "docker-test", "--json")
    created: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    shell.secrets += [created["key"], created["webhook_secret"]]
    return created


def png_through_presigned_url(sc: Scenario) -> None:
    with step("submit → poll → download a PNG through the presigned URL (emoji and CJK fonts)"):
        job_id = sc.api.submit({"url": sc.servers.page_url("/fidelity/fonts.html"),
                                "width": 600, "height": 200})
        # The first capture of a worker waits for its Chromium to start.
        view = sc.api.wait([job_id], timeout=360)[job_id]
        check(view["status"] == "succeeded", f"job failed: {view.get('error')}")
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "shot.png"
            came_from = sc.api.download(job_id, target)
            data = target.read_bytes()
        say(f"   downloaded {len(data)} bytes from {came_from.split('?')[0]}?…")
        check(came_from.startswith(sc.s3_url) and "Signature" in came_from,
              f"the result did not come from a presigned URL of {sc.s3_url}: {came_from}")
        check(hashlib.sha256(data).hexdigest() == view["result"]["sha256"], "sha256 differs")
        check(data.startswith(b"\x89PNG"), "not a PNG")
        measures, problems = font_problems(data)
        say(f"   pixels: {measures}")
        check(not problems, "; ".join(problems))
        sc.results["fonts"] = measures


def pdf(sc: Scenario) -> None:
    with step("a PDF"):
        job_id = sc.api.submit({"url": sc.servers.page_url("/fidelity/fonts.html"),
                                "format": "pdf"})
        view = sc.api.wait([job_id], timeout=WAIT_SECONDS)[job_id]
        check(view["status"] == "succeeded", f"job failed: {view.get('error')}")
        check(view["result"]["content_type"] == "application/pdf", str(view["result"]))
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "shot.pdf"
            sc.api.download(job_id, target)
            data = target.read_bytes()
        check(data.startswith(b"%PDF-") and b"%%EOF" in data[-64:], "not a whole PDF")
        say(f"   {len(data)} bytes of PDF")


def webhook(sc: Scenario, secret: str) -> None:
    with step("a webhook to a receiver, signed with the key's secret"):
        before = len(sc.servers.receiver.deliveries)
        job_id = sc.api.submit({"url": sc.servers.page_url("/fidelity/fonts.html"),
                                "webhook_url": sc.servers.webhook_url})
        sc.api.wait([job_id], timeout=WAIT_SECONDS)
        deliveries = sc.servers.wait_for_deliveries(before + 1, timeout=60)[before:]
        check(bool(deliveries), "no webhook arrived within 60 s")
        payload = Webhook(secret).verify(deliveries[0].body, deliveries[0].headers)
        check(payload["type"] == "job.succeeded" and payload["data"]["id"] == job_id,
              f"unexpected event {payload['type']} for {payload['data'].get('id')}")
        say(f"   {payload['type']} for {job_id}, webhook-id {deliveries[0].headers['webhook-id']}"
            ", signature verified")


def sandbox(sc: Scenario) -> None:
    with step("Chromium in the worker runs as uid 10001 with its sandbox on (/proc of a renderer)"):
        job_id = sc.api.submit(sc.slow_capture(delay_ms=20_000))
        sc.api.wait([job_id], timeout=WAIT_SECONDS, statuses={"running", "succeeded", "failed"})
        deadline = time.monotonic() + 90
        processes: list[dict[str, Any]] = []
        container = ""
        while time.monotonic() < deadline and not any(p["type"] == "renderer" for p in processes):
            for candidate in sc.stack.running("worker"):
                container = str(candidate["Name"]).lstrip("/")
                processes = chromium_processes(sc.shell, container)
                if any(p["type"] == "renderer" for p in processes):
                    break
            time.sleep(0.5)
        for process in processes:
            say(f"   {container}: {process['type']:<9} pid {process['pid']:<5} uid "
                f"{','.join(process['uid'] or [])} Seccomp {process['seccomp']} NSpid "
                f"{' '.join(process['nspid'] or [])} {process['user_ns']} {process['pid_ns']}")
        problems = sandbox_problems(processes)
        check(not problems, "; ".join(problems))
        sc.api.wait([job_id], timeout=WAIT_SECONDS)
        sc.results["sandbox"] = {"container": container, "processes": processes}


def scale_out(sc: Scenario) -> None:
    with step("--scale worker=3: three healthy capture workers share the captures"):
        sc.stack.compose("up", "--detach", "--no-build", "--scale", "worker=3", timeout=300)
        sc.stack.wait_healthy(timeout=300, expect={"worker": 3})
        job_ids = [sc.api.submit(sc.slow_capture(delay_ms=3000), quiet=True) for _ in range(9)]
        say(f"   submitted 9 captures of {3000} ms")
        views = sc.api.wait(job_ids, timeout=WAIT_SECONDS)
        failed = {j: v.get("error") for j, v in views.items() if v["status"] != "succeeded"}
        check(not failed, f"failed: {failed}")
        placed = sc.running_on()
        spread = {placed.get(j, "?") for j in job_ids}
        say(f"   ran on: {sorted(spread)}")
        sc.results["scale_spread"] = sorted(spread)
        check(len(spread - {"?"}) >= 2, f"all captures ran on {spread}")


def warm_stop(sc: Scenario) -> None:
    with step("docker compose stop worker during captures: warm shutdown, no job lost"):
        job_ids = [sc.api.submit(sc.slow_capture(), quiet=True) for _ in range(8)]
        say(f"   submitted 8 captures of {SLOW_CAPTURE_MS} ms")
        views = sc.api.wait(job_ids[:1], timeout=WAIT_SECONDS, statuses={"running", "succeeded"})
        running = [j for j in job_ids if sc.api.job(j)["status"] == "running"]
        began = time.monotonic()
        sc.stack.compose("stop", "worker", timeout=300)
        stopped_after = time.monotonic() - began
        views = {j: sc.api.job(j) for j in job_ids}
        statuses = {j: v["status"] for j, v in views.items()}
        say(f"   stop took {stopped_after:.1f} s; {len(running)} were running; now "
            f"{sorted(statuses.values())}")
        check("failed" not in statuses.values(), f"a job failed on stop: {statuses}")
        # Running captures finish within the stop (or, past SHOTLINE_SHUTDOWN_TIMEOUT_SECONDS
        # on a very slow host, go back to the queue): none fails, none is lost.
        finished = [j for j in running if statuses[j] == "succeeded"]
        say(f"   {len(finished)} of the {len(running)} running captures finished during the stop")
        sc.stack.compose("start", "worker", timeout=300)
        sc.stack.wait_healthy(timeout=300, expect={"worker": 3})
        views = sc.api.wait(job_ids, timeout=WAIT_SECONDS)
        failed = {j: v.get("error") for j, v in views.items() if v["status"] != "succeeded"}
        check(not failed, f"failed after the restart: {failed}")
        sc.results["warm_stop"] = {"seconds": round(stopped_after, 1), "running": len(running),
                                   "finished_during_stop": len(finished)}


def kill_mid_capture(sc: Scenario) -> None:
    with step("docker kill of a worker mid-capture: its capture is redelivered, no job lost"):
        job_ids = [sc.api.submit(sc.slow_capture(delay_ms=8000), quiet=True) for _ in range(4)]
        sc.api.wait(job_ids[:1], timeout=WAIT_SECONDS, statuses={"running", "succeeded"})
        victim, victim_jobs = "", list[str]()
        deadline = time.monotonic() + 120
        while not victim_jobs and time.monotonic() < deadline:
            placed = sc.running_on()
            current = {j: sc.api.job(j)["status"] for j in job_ids}
            for job_id, container in placed.items():
                if current.get(job_id) == "running":
                    victim = container
                    victim_jobs = [j for j, c in placed.items()
                                   if c == container and current.get(j) == "running"]
                    break
            time.sleep(0.5)
        check(bool(victim_jobs), "no capture was seen running")
        sc.shell.run(["docker", "kill", victim])
        say(f"   killed {victim} while it ran {victim_jobs}")
        views = sc.api.wait(job_ids, timeout=WAIT_SECONDS)
        failed = {j: v.get("error") for j, v in views.items() if v["status"] != "succeeded"}
        check(not failed, f"failed after the kill: {failed}")
        attempts = {j: views[j].get("attempts") for j in victim_jobs}
        say(f"   every capture succeeded; the killed worker's: attempts {attempts}")
        sc.results["killed"] = {"container": victim, "jobs": victim_jobs}


def down(sc: Scenario, *, private_engine: bool) -> None:
    with step("docker compose down leaves nothing running"):
        sc.stack.compose("down", timeout=300)
        sc.stack.assert_nothing_left()
        if private_engine:
            left = sc.shell.run(["docker", "ps", "-aq"], quiet=True).stdout.split()
            check(not left, f"containers left on the engine: {left}")
        say("   no container of the project is left")

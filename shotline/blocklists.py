"""``shotline blocklist update``: rebuild the page-cleanup data files from maintained lists.

Two npm packages are the sources (npm is the registry the tool fetches them from, with the
ordinary ``npm pack`` client; a tarball can be given instead, e.g. offline):

- ``@ghostery/trackerdb`` — Ghostery's tracker database (domains by category), updated
  weekly. Its ``advertising`` hosts become ``block_ads``, its ``site_analytics`` and
  ``misc`` hosts ``block_trackers``. Licence CC BY-NC-SA 4.0 (see the README).
- ``@duckduckgo/autoconsent`` — DuckDuckGo's consent-manager rules (MPL-2.0). Each rule's
  detection selectors, "accept" clicks and pre-hide selectors become one entry of the
  cookie-banner rules (``block_cookie_banners``).

The builders are pure functions of the packages' JSON; fetching is separate.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from shared.errors import ConfigurationError

HOSTS_PACKAGE: Final = "@ghostery/trackerdb"
HOSTS_MEMBER: Final = "package/dist/trackerdb.json"
CONSENT_PACKAGE: Final = "@duckduckgo/autoconsent"
CONSENT_MEMBER: Final = "package/rules/rules.json"

#: Which trackerdb categories make up each blocklist category.
HOST_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "ads": ("advertising", "pornvertising"),
    "trackers": ("site_analytics", "misc"),
}

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")


def build_blocklist(trackerdb: Mapping[str, Any], *, source: Mapping[str, str]) -> dict[str, Any]:
    """The ``blocklist.json`` document from trackerdb's ``trackerdb.json``.

    Raises:
        ConfigurationError: the document does not look like trackerdb's export.
    """
    patterns, domains = trackerdb.get("patterns"), trackerdb.get("domains")
    if not isinstance(patterns, Mapping) or not isinstance(domains, Mapping):
        raise ConfigurationError("not a trackerdb export: no 'patterns' and 'domains'")
    categories: dict[str, set[str]] = {name: set() for name in HOST_CATEGORIES}
    for domain, pattern_id in domains.items():
        pattern = patterns.get(pattern_id)
        host = str(domain).strip().lower()
        if not isinstance(pattern, Mapping) or not _HOST.match(host):
            continue
        for name, wanted in HOST_CATEGORIES.items():
            if pattern.get("category") in wanted:
                categories[name].add(host)
    if not all(categories.values()):
        raise ConfigurationError("the trackerdb export yielded an empty category")
    return {
        "source": dict(source),
        "categories": {name: sorted(hosts) for name, hosts in categories.items()},
    }


def _selectors(steps: Iterable[Any], keys: tuple[str, ...]) -> list[str]:
    """Plain CSS selectors of ``steps`` under ``keys`` (top-level steps; no XPath or
    shadow-DOM chains, which are lists)."""
    found = []
    for step in steps:
        if not isinstance(step, Mapping):
            continue
        for key in keys:
            selector = step.get(key)
            if isinstance(selector, str) and selector.strip() and not selector.startswith("xpath/"):
                found.append(selector.strip())
    return list(dict.fromkeys(found))


def build_consent_rules(
    autoconsent: Mapping[str, Any], *, source: Mapping[str, str]
) -> dict[str, Any]:
    """The ``consent_rules.json`` document from autoconsent's ``rules.json``.

    Each rule keeps: ``name``; ``url`` (a regular expression the page URL must match,
    or null for every site); ``detect`` (selectors whose presence means the CMP is on
    the page); ``accept`` (buttons clicked to accept, first visible one wins); ``hide``
    (selectors hidden afterwards). Rules for iframes only, or with nothing to detect,
    are left out.
    """
    rules = autoconsent.get("autoconsent")
    if not isinstance(rules, list):
        raise ConfigurationError("not autoconsent's rules.json: no 'autoconsent' list")
    kept = []
    for rule in rules:
        if not isinstance(rule, Mapping) or not isinstance(rule.get("name"), str):
            continue
        context = rule.get("runContext") or {}
        if context.get("main") is False:
            continue
        detect = _selectors(rule.get("detectCmp") or [], ("exists", "visible"))
        popup = _selectors(rule.get("detectPopup") or [], ("exists", "visible"))
        hide = [s for s in rule.get("prehideSelectors") or [] if isinstance(s, str)] or popup
        accept = _selectors(rule.get("optIn") or [], ("click", "waitForThenClick"))
        if not detect or not (accept or hide):
            continue
        url = context.get("urlPattern")
        kept.append({
            "name": rule["name"],
            "url": url if isinstance(url, str) and url else None,
            "detect": detect,
            "accept": accept,
            "hide": list(dict.fromkeys(hide)),
        })
    if not kept:
        raise ConfigurationError("autoconsent's rules.json yielded no usable rule")
    return {"source": dict(source), "rules": kept}


def npm_pack(package: str, destination: Path) -> Path:
    """Download ``package`` (``name`` or ``name@version``) from npm as a tarball.

    Raises:
        ConfigurationError: npm is missing or the download failed.
    """
    try:
        completed = subprocess.run(
            ["npm", "pack", package, "--json", "--pack-destination", str(destination)],
            capture_output=True, text=True, timeout=300, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"could not run npm to fetch {package}: {exc}") from exc
    if completed.returncode != 0:
        raise ConfigurationError(
            f"npm pack {package} failed: {completed.stderr.strip()[-500:]}"
        )
    [info] = json.loads(completed.stdout)
    return destination / str(info["filename"])


def read_package(tarball: Path, member: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON ``member`` of an npm tarball, and where it came from (name, version,
    licence, homepage) from the tarball's ``package.json``."""
    with tarfile.open(tarball, "r:gz") as archive:
        try:
            manifest = json.load(_member(archive, "package/package.json"))
            document = json.load(_member(archive, member))
        except (KeyError, ValueError) as exc:
            raise ConfigurationError(f"{tarball.name}: cannot read {member}: {exc}") from exc
    repository = manifest.get("repository")
    url = repository.get("url", "") if isinstance(repository, dict) else str(repository or "")
    source = {
        "package": str(manifest.get("name", "")),
        "version": str(manifest.get("version", "")),
        "license": str(manifest.get("license", "")),
        "repository": url.removeprefix("git+").removesuffix(".git"),
    }
    return document, source


def _member(archive: tarfile.TarFile, name: str) -> Any:
    extracted = archive.extractfile(name)
    if extracted is None:
        raise KeyError(name)
    return extracted


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` atomically (compact, one rule or category per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(
        f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False, separators=(',', ':'))}"
        for key, value in document.items()
    )
    candidate = path.with_suffix(".tmp")
    candidate.write_text("{\n" + body + "\n}\n")
    candidate.replace(path)


def update(
    output_dir: Path,
    *,
    hosts_tarball: Path | None = None,
    consent_tarball: Path | None = None,
    hosts_package: str = HOSTS_PACKAGE,
    consent_package: str = CONSENT_PACKAGE,
) -> dict[str, dict[str, str]]:
    """Rebuild ``blocklist.json`` and ``consent_rules.json`` in ``output_dir``.

    Packages are fetched from npm unless a tarball is given. Returns each file's source.
    """
    written: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="shotline-blocklist-") as scratch:
        hosts = hosts_tarball or npm_pack(hosts_package, Path(scratch))
        document, source = read_package(hosts, HOSTS_MEMBER)
        write_json(output_dir / "blocklist.json", build_blocklist(document, source=source))
        written["blocklist.json"] = source
        consent = consent_tarball or npm_pack(consent_package, Path(scratch))
        document, source = read_package(consent, CONSENT_MEMBER)
        write_json(output_dir / "consent_rules.json",
                   build_consent_rules(document, source=source))
        written["consent_rules.json"] = source
    return written

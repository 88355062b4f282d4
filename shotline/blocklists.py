"""``shotline blocklist update``: rebuild the page-cleanup data files from maintained lists.

- EasyList (``block_ads``) and EasyPrivacy (``block_trackers``), in Adblock Plus syntax,
  from their published URLs or from files (Debian's ``webext-ublock-origin-chromium``
  ships copies under :data:`DEBIAN_LISTS`). Used under their CC BY-SA 3.0 option: the
  data folder keeps the licence text and the attribution (see its README). Stored
  gzipped, with where they came from in ``filter_lists.json``.
- ``@duckduckgo/autoconsent`` — DuckDuckGo's consent-manager rules (MPL-2.0), from npm
  with the ordinary ``npm pack`` client or a given tarball. Each rule's detection
  selectors, "accept" clicks and pre-hide selectors become one entry of the cookie-banner
  rules (``block_cookie_banners``).

The builders are pure functions of the lists' text and the package's JSON; fetching is
separate.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from shared.errors import ConfigurationError

CONSENT_PACKAGE: Final = "@duckduckgo/autoconsent"
CONSENT_MEMBER: Final = "package/rules/rules.json"

#: Where Debian's uBlock Origin package keeps its copies of EasyList and EasyPrivacy.
DEBIAN_LISTS: Final = Path("/usr/share/chromium/extensions/ublock-origin/assets/thirdparties/easylist")

#: The licence the lists are used under (EasyList is dual-licensed GPLv3+ / CC BY-SA 3.0+).
LIST_LICENSE: Final = "CC-BY-SA-3.0 (dual-licensed GPL-3.0-or-later / CC BY-SA 3.0; used under CC BY-SA 3.0)"
LIST_COPYRIGHT: Final = "The EasyList authors (https://easylist.to/)"


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One filter list Shotline ships: its category, name, file and published URL."""

    category: str
    name: str
    file: str
    url: str


FILTER_LISTS: Final = (
    ListSpec("ads", "EasyList", "easylist.txt.gz", "https://easylist.to/easylist/easylist.txt"),
    ListSpec("trackers", "EasyPrivacy", "easyprivacy.txt.gz",
             "https://easylist.to/easylist/easyprivacy.txt"),
)


def check_filter_list(text: str, name: str) -> str:
    """``text`` when it is an Adblock Plus filter list with rules in it.

    Raises:
        ConfigurationError: it is not (an error page, an empty file, another format).
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or not lines[0].startswith("[Adblock Plus"):
        raise ConfigurationError(f"{name}: not an Adblock Plus filter list (no '[Adblock Plus' header)")
    if not any(line.strip() and not line.startswith(("!", "[")) for line in lines[1:]):
        raise ConfigurationError(f"{name}: the filter list holds no rule")
    return text


def fetch_list(source: str) -> str:
    """The text of a filter list from a URL (http/https) or a file path.

    Raises:
        ConfigurationError: it could not be read.
    """
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, follow_redirects=True, timeout=120)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ConfigurationError(f"could not download {source}: {exc}") from exc
        return response.text
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"could not read {source}: {exc}") from exc


def update_filter_lists(output_dir: Path, sources: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Write each list of :data:`FILTER_LISTS` from ``sources`` (category → URL or file;
    the published URL when missing) and record where it came from in ``filter_lists.json``.
    Every list is read and checked before any file is written."""
    texts = {
        spec.category: check_filter_list(fetch_list(sources.get(spec.category, spec.url)), spec.name)
        for spec in FILTER_LISTS
    }
    record_path = output_dir / "filter_lists.json"
    try:
        recorded: dict[str, dict[str, Any]] = json.loads(record_path.read_text())["source"]
    except (OSError, ValueError, KeyError):
        recorded = {}
    output_dir.mkdir(parents=True, exist_ok=True)
    fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
    for spec in FILTER_LISTS:
        origin = sources.get(spec.category, spec.url)
        candidate = output_dir / (spec.file + ".tmp")
        with gzip.GzipFile(candidate, "wb", compresslevel=9, mtime=0) as packed:
            packed.write(texts[spec.category].encode("utf-8"))
        candidate.replace(output_dir / spec.file)
        recorded[spec.category] = {
            "name": spec.name, "file": spec.file, "url": spec.url, "license": LIST_LICENSE,
            "copyright": LIST_COPYRIGHT, "fetched_from": f"{origin} ({fetched_at})",
        }
    write_json(record_path, {"source": recorded})
    return {spec.file: recorded[spec.category] for spec in FILTER_LISTS}


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
    list_sources: Mapping[str, str] | None = None,
    consent_tarball: Path | None = None,
    consent_package: str = CONSENT_PACKAGE,
    consent_rules: bool = True,
) -> dict[str, dict[str, Any]]:
    """Rebuild the filter lists and (unless ``consent_rules`` is false) ``consent_rules.json``
    in ``output_dir``. Lists come from ``list_sources`` (category → URL or file) or their
    published URLs; the consent rules from npm unless a tarball is given. Returns each
    file's source."""
    written = update_filter_lists(output_dir, list_sources or {})
    if consent_rules:
        with tempfile.TemporaryDirectory(prefix="shotline-blocklist-") as scratch:
            consent = consent_tarball or npm_pack(consent_package, Path(scratch))
            document, source = read_package(consent, CONSENT_MEMBER)
            write_json(output_dir / "consent_rules.json",
                       build_consent_rules(document, source=source))
            written["consent_rules.json"] = source
    return written

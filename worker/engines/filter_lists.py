"""The filter lists behind ``block_ads``, ``block_trackers`` and ``block_chats``, matched by
Brave's adblock-rust (the ``adblock`` package, MIT OR Apache-2.0).

Each option has one list in Adblock Plus syntax under ``data/`` (see its README):
EasyList for ads, EasyPrivacy for trackers (both used under their CC BY-SA 3.0 option),
and a small list of chat-widget hosts and containers written for Shotline. A list
brings two kinds of rules: network rules (a request's URL, its type and whether it is
third-party) and element-hiding rules (CSS selectors, generic or for some sites).

Each list is compiled once per process, on first use (about a second for EasyList,
holding the GIL), and kept.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import adblock
import structlog
from publicsuffixlist import PublicSuffixList

from shared.errors import ConfigurationError
from shared.jobs import CaptureOptions

log = structlog.get_logger("shotline.engines.filter_lists")

#: Where the engines' data files live.
DATA_DIR: Final = Path(__file__).parent / "data"
#: Which list file each category reads, with its source and licence.
SOURCES_FILE: Final = DATA_DIR / "filter_lists.json"
#: The categories and the option that turns each on.
CATEGORY_OPTIONS: Final = {"ads": "block_ads", "trackers": "block_trackers", "chats": "block_chats"}

#: Playwright's resource types as adblock-rust names them (what ``$script``, ``$xhr``,
#: ``$subdocument``... options match).
REQUEST_TYPES: Final = {
    "document": "sub_frame",
    "stylesheet": "stylesheet",
    "image": "image",
    "media": "media",
    "font": "font",
    "script": "script",
    "texttrack": "media",
    "xhr": "xhr",
    "fetch": "xhr",
    "eventsource": "other",
    "websocket": "websocket",
    "manifest": "web_manifest",
    "ping": "ping",
    "other": "other",
}


@dataclass(frozen=True, slots=True)
class PageHiding:
    """A list's element-hiding rules for one page: selectors to hide whatever the page
    holds, the generic selectors the site is excepted from, and whether the site turns
    generic hiding off (``$generichide``)."""

    selectors: frozenset[str]
    exceptions: frozenset[str]
    generic_off: bool


class FilterList:
    """One compiled filter list (network and element-hiding rules)."""

    def __init__(self, category: str, rules: str) -> None:
        filters = adblock.FilterSet(debug=False)
        filters.add_filter_list(rules)
        self.category = category
        self._engine = adblock.Engine(filters, optimize=True)

    def blocks(self, url: str, *, host: str, page_host: str, resource_type: str) -> bool:
        """Whether a network rule refuses ``url`` (on ``host``, requested by a page on
        ``page_host``) and no exception rule lets it through.

        Hosts are given, and whether the request is third-party worked out here with a
        cached registrable-domain lookup: adblock-rust's own lookup (``check_network_urls``)
        costs seven times the match.
        """
        result = self._engine.check_network_urls_with_hostnames(
            url, host, page_host, REQUEST_TYPES.get(resource_type, "other"),
            third_party(host, page_host),
        )
        return bool(result.matched) and result.exception is None

    def page_hiding(self, page_url: str) -> PageHiding:
        """The element-hiding rules that apply to ``page_url`` whatever its content."""
        found = self._engine.url_cosmetic_resources(page_url)
        return PageHiding(
            selectors=frozenset(found.hide_selectors),
            exceptions=frozenset(found.exceptions),
            generic_off=bool(getattr(found, "generichide", False)),
        )

    def class_id_selectors(
        self, classes: Iterable[str], ids: Iterable[str], exceptions: frozenset[str]
    ) -> list[str]:
        """The generic ``##.class`` / ``###id`` rules matching the page's ``classes`` and ``ids``."""
        return list(self._engine.hidden_class_id_selectors(list(classes), list(ids), set(exceptions)))


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()


@functools.lru_cache(maxsize=8192)
def site_of(host: str) -> str:
    """The registrable domain of ``host`` (``www.example.co.uk`` → ``example.co.uk``); an
    IP address or a bare name is its own site."""
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host
    except ValueError:
        pass
    return _public_suffixes().privatesuffix(host) or host


def third_party(host: str, page_host: str) -> bool:
    """Whether a request to ``host`` from a page on ``page_host`` is third-party (another site)."""
    return site_of(host) != site_of(page_host)


def list_sources(path: Path = SOURCES_FILE) -> dict[str, dict[str, Any]]:
    """Each category's list file, origin and licence, as ``filter_lists.json`` records them."""
    try:
        document = json.loads(path.read_text())
        sources: dict[str, dict[str, Any]] = document["source"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigurationError(
            f"cannot read {path}: {exc}; run `shotline blocklist update`"
        ) from exc
    return sources


def read_rules(path: Path) -> str:
    """A list's text (``.gz`` files are decompressed)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as packed:
            return packed.read()
    return path.read_text(encoding="utf-8")


@functools.cache
def load_filter_list(category: str, data_dir: Path = DATA_DIR) -> FilterList:
    """The shipped list of ``category``, compiled (once per process).

    Raises:
        ConfigurationError: the list is missing or unreadable.
    """
    sources = list_sources(data_dir / SOURCES_FILE.name)
    if category not in sources:
        raise ConfigurationError(f"no filter list for {category!r} in {data_dir}")
    path = data_dir / str(sources[category]["file"])
    try:
        rules = read_rules(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read the filter list {path}: {exc}; run `shotline blocklist update`"
        ) from exc
    compiled = FilterList(category, rules)
    log.info("Filter list compiled.", category=category, file=path.name, chars=len(rules))
    return compiled


def lists_for(options: CaptureOptions) -> tuple[FilterList, ...]:
    """The compiled lists the options turn on (none when no blocking option is set)."""
    return tuple(
        load_filter_list(category)
        for category, option in CATEGORY_OPTIONS.items()
        if getattr(options, option, False)
    )

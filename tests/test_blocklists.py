"""The page-cleanup data: the shipped host list and consent rules, the matching rules, and
``shotline blocklist update`` rebuilding them from npm package tarballs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shared.errors import ConfigurationError
from shared.jobs import CaptureOptions
from shotline.blocklists import build_blocklist, build_consent_rules
from shotline.cli import main
from worker.engines.blocking import Blocklist, RequestBlocker, is_listed, load_blocklist
from worker.engines.cookie_banners import hiding_css, load_rules, parse_rules

PAGE = "https://www.example.com/article"


def test_shipped_blocklist_has_ads_and_trackers_from_a_maintained_source() -> None:
    shipped = load_blocklist()
    assert shipped.source["package"] == "@ghostery/trackerdb" and shipped.source["version"]
    assert len(shipped.hosts("ads")) > 1000 and len(shipped.hosts("trackers")) > 500
    assert "doubleclick.net" in shipped.hosts("ads")
    assert "google-analytics.com" in shipped.hosts("trackers")


def test_shipped_consent_rules_cover_the_big_consent_managers() -> None:
    names = {rule.name.lower() for rule in load_rules()}
    assert {"onetrust", "cookiebot", "didomi", "quantcast", "usercentrics", "sourcepoint",
            "trustarc", "cookieyes", "osano", "iubenda"} <= names
    assert len(names) > 500


def test_hosts_match_with_their_parent_domains() -> None:
    hosts = frozenset({"doubleclick.net", "ads.example.org"})
    assert is_listed("securepubads.g.doubleclick.net", hosts)
    assert is_listed("DoubleClick.net.", hosts)
    assert is_listed("x.ads.example.org", hosts)
    assert not is_listed("example.org", hosts)
    assert not is_listed("notdoubleclick.net", hosts)


def test_request_blocker_decisions() -> None:
    listed = Blocklist({"ads": frozenset({"adhost.com", "example.com"}),
                        "trackers": frozenset({"tracker.io"})})
    ads = RequestBlocker(CaptureOptions(url=PAGE, block_ads=True), listed)
    assert ads.should_block("https://x.adhost.com/a.js", "script", main_document=False)
    assert ads.should_block("https://adhost.com/frame", "document", main_document=False)
    assert not ads.should_block("https://tracker.io/t.js", "script", main_document=False)
    # The page's own site is never refused, nor the page itself wherever it redirects.
    assert not ads.should_block("https://cdn.www.example.com/a.js", "script",
                                main_document=False)
    assert not ads.should_block("https://adhost.com/", "document", main_document=True)
    both = RequestBlocker(CaptureOptions(url=PAGE, block_ads=True, block_trackers=True), listed)
    assert both.should_block("https://tracker.io/t.js", "script", main_document=False)
    kinds = RequestBlocker(CaptureOptions(url=PAGE, block_resources=["font", "image"]), listed)
    assert kinds.should_block("https://www.example.com/a.woff2", "font", main_document=False)
    assert not kinds.should_block("https://adhost.com/a.js", "script", main_document=False)
    assert not RequestBlocker(CaptureOptions(url=PAGE), listed).active


def test_consent_rules_apply_by_url_and_hide_each_selector() -> None:
    rules = parse_rules({"rules": [
        {"name": "any", "url": None, "detect": ["#a"], "accept": [], "hide": ["#a"]},
        {"name": "one", "url": r"^https://(www\.)?shop\.example/", "detect": ["#b"],
         "accept": ["#ok"], "hide": ["#b"]},
        {"name": "bad", "url": "(?<=unbalanced", "detect": ["#c"], "accept": [], "hide": []},
    ]})
    assert [rule.name for rule in rules] == ["any", "one"]
    assert rules[1].applies_to("https://shop.example/cart")
    assert not rules[1].applies_to("https://example.com/")
    assert hiding_css(["#a", ".b, .c"]) == (
        "#a { display: none !important; }\n.b, .c { display: none !important; }")


TRACKERDB: dict[str, Any] = {
    "patterns": {
        "adco": {"category": "advertising"},
        "stats": {"category": "site_analytics"},
        "cdn": {"category": "hosting"},
    },
    "domains": {"ads.adco.com": "adco", "adco.net": "adco", "stats.io": "stats",
                "cdn.net": "cdn", "not a host": "adco"},
}
AUTOCONSENT: dict[str, Any] = {"autoconsent": [
    {"name": "cmp-a", "prehideSelectors": ["#cmp-a"], "detectCmp": [{"exists": "#cmp-a"}],
     "detectPopup": [{"visible": "#cmp-a .popup"}],
     "optIn": [{"waitForThenClick": "#cmp-a .accept"}, {"if": {"exists": "#x"}}]},
    {"name": "cmp-b", "runContext": {"urlPattern": "^https://b\\.example/"},
     "detectCmp": [{"exists": ["#host", "#in-shadow"]}, {"visible": "#cmp-b"}],
     "detectPopup": [{"visible": "#cmp-b"}], "optIn": [{"click": "xpath///button"}]},
    {"name": "frame-only", "runContext": {"main": False}, "detectCmp": [{"exists": "#f"}],
     "optIn": [{"click": "#f button"}]},
    {"name": "nothing-to-detect", "detectCmp": [{"eval": "EVAL_X"}], "optIn": []},
]}


def test_builders_turn_the_packages_json_into_our_data() -> None:
    source = {"package": "p", "version": "1"}
    hosts = build_blocklist(TRACKERDB, source=source)
    assert hosts == {"source": source, "categories": {
        "ads": ["adco.net", "ads.adco.com"], "trackers": ["stats.io"]}}
    rules = build_consent_rules(AUTOCONSENT, source=source)["rules"]
    assert rules == [
        {"name": "cmp-a", "url": None, "detect": ["#cmp-a"], "accept": ["#cmp-a .accept"],
         "hide": ["#cmp-a"]},
        {"name": "cmp-b", "url": "^https://b\\.example/", "detect": ["#cmp-b"], "accept": [],
         "hide": ["#cmp-b"]},
    ]
    with pytest.raises(ConfigurationError):
        build_blocklist({"nope": 1}, source=source)
    with pytest.raises(ConfigurationError):
        build_consent_rules({"autoconsent": []}, source=source)


def npm_tarball(path: Path, name: str, files: dict[str, Any]) -> Path:
    """An npm package tarball (``package/...``) with a package.json and JSON ``files``."""
    manifest = {"name": name, "version": "9.9.9", "license": "MIT",
                "repository": {"url": f"git+https://github.com/{name.lstrip('@')}.git"}}
    with tarfile.open(path, "w:gz") as archive:
        for member, content in {"package/package.json": manifest, **files}.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_update_command_rebuilds_the_data_files(tmp_path: Path) -> None:
    hosts = npm_tarball(tmp_path / "trackerdb.tgz", "@ghostery/trackerdb",
                        {"package/dist/trackerdb.json": TRACKERDB})
    consent = npm_tarball(tmp_path / "autoconsent.tgz", "@duckduckgo/autoconsent",
                          {"package/rules/rules.json": AUTOCONSENT})
    out = tmp_path / "data"
    result = CliRunner().invoke(main, [
        "blocklist", "update", "--output-dir", str(out),
        "--hosts-tarball", str(hosts), "--consent-tarball", str(consent),
    ])
    assert result.exit_code == 0, result.output
    assert "@ghostery/trackerdb 9.9.9 (MIT)" in result.output
    written = load_blocklist.__wrapped__(out / "blocklist.json")
    assert written.hosts("ads") == {"adco.net", "ads.adco.com"}
    assert written.source["repository"] == "https://github.com/ghostery/trackerdb"
    rules = load_rules.__wrapped__((out / "consent_rules.json",))
    assert [rule.name for rule in rules] == ["cmp-a", "cmp-b"]


def test_update_command_reports_a_broken_package(tmp_path: Path) -> None:
    broken = npm_tarball(tmp_path / "broken.tgz", "@ghostery/trackerdb", {})
    result = CliRunner().invoke(main, [
        "blocklist", "update", "--output-dir", str(tmp_path / "data"),
        "--hosts-tarball", str(broken), "--consent-tarball", str(broken),
    ])
    assert result.exit_code == 1
    assert "cannot read package/dist/trackerdb.json" in result.output
    assert not (tmp_path / "data" / "blocklist.json").exists()

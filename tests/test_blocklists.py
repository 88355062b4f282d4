"""The page-cleanup data: the shipped filter lists and consent rules, the matching rules,
and ``shotline blocklist update`` rebuilding them from list files, URLs and npm tarballs."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from shared.errors import ConfigurationError
from shared.jobs import CaptureOptions
from shared.options import ResourceType
from shotline.blocklists import DEBIAN_LISTS, build_consent_rules, check_filter_list
from shotline.cli import main
from tests.servers import PageServer
from worker.engines.blocking import RequestBlocker
from worker.engines.cookie_banners import hiding_css, load_rules, parse_rules
from worker.engines.element_hiding import selectors_for
from worker.engines.filter_lists import DATA_DIR, FilterList, list_sources, load_filter_list, read_rules

PAGE = "https://www.example.com/article"


def blocks(listed: FilterList, url: str) -> bool:
    """Whether ``listed`` refuses the script ``url`` on :data:`PAGE`."""
    return listed.blocks(url, host=urlsplit(url).hostname or "", page_host="www.example.com",
                         resource_type="script")


def test_shipped_lists_are_easylist_and_easyprivacy_under_a_commercial_licence() -> None:
    sources = list_sources()
    assert sources["ads"]["name"] == "EasyList" and sources["trackers"]["name"] == "EasyPrivacy"
    for category in ("ads", "trackers"):
        assert sources[category]["license"].startswith("CC-BY-SA-3.0")
        assert "EasyList authors" in sources[category]["copyright"]
    assert (DATA_DIR / "LICENSE-CC-BY-SA-3.0.txt").read_text().startswith(
        "Creative Commons Attribution-ShareAlike 3.0 Unported")


def test_every_shipped_data_file_has_a_licence_that_allows_commercial_use() -> None:
    """The data README's table names each file of the data folder with its licence."""
    rows = [line.split("|") for line in (DATA_DIR / "README.md").read_text().splitlines()
            if line.startswith("| `")]
    licences = {row[1].strip().strip("`"): row[4].strip() for row in rows}
    shipped = {path.name for path in DATA_DIR.iterdir() if path.name != "README.md"}
    assert "blocklist.json" not in shipped  # Ghostery's TrackerDB (CC BY-NC-SA) is gone
    assert shipped <= set(licences), shipped - set(licences)
    for name in shipped:
        assert licences[name], name
        assert "NC" not in licences[name].replace("-", " ").split(), (name, licences[name])


def test_shipped_lists_block_real_ad_tracker_and_chat_hosts() -> None:
    ads, trackers, chats = (load_filter_list(c) for c in ("ads", "trackers", "chats"))
    assert blocks(ads, "https://securepubads.g.doubleclick.net/tag/js/gpt.js")
    assert blocks(trackers, "https://www.google-analytics.com/analytics.js")
    assert not blocks(ads, "https://www.google-analytics.com/analytics.js")
    for widget in ("https://widget.intercom.io/widget/x", "https://js.driftt.com/include/1/x.js",
                   "https://static.zdassets.com/ekr/snippet.js", "https://client.crisp.chat/l.js",
                   "https://js.usemessages.com/conversations-embed.js",
                   "https://embed.tawk.to/x/default", "https://cdn.livechatinc.com/tracking.js",
                   "https://code.tidio.co/x.js", "https://static.olark.com/jsclient/loader.js"):
        assert blocks(chats, widget), widget
    assert not blocks(chats, "https://cdn.example.net/app.js")


def test_element_hiding_takes_generic_rules_for_the_pages_classes_and_ids() -> None:
    listed = FilterList("ads", "##.promo-box\n###sky\nexample.com##.only-here\n"
                        "other.org##.elsewhere\n@@||exempt.example^$generichide")
    found = selectors_for([listed], PAGE, ["promo-box", "text"], ["sky", "main"])
    assert set(found) == {".promo-box", "#sky", ".only-here"}
    assert selectors_for([listed], PAGE, ["text"], ["main"]) == [".only-here"]
    assert selectors_for([listed], "https://exempt.example/", ["promo-box"], ["sky"]) == []


def test_request_blocker_decisions() -> None:
    listed = FilterList("ads", "||adhost.com^\n||example.com/ads/^\n/banner-ads/\n")
    ads = RequestBlocker(CaptureOptions(url=PAGE, block_ads=True), [listed])
    assert ads.should_block("https://x.adhost.com/a.js", "script", main_document=False)
    assert ads.should_block("https://adhost.com/frame", "document", main_document=False)
    assert ads.should_block("https://cdn.other.net/banner-ads/1.png", "image", main_document=False)
    # The page's own site is never refused, nor the page itself wherever it redirects.
    assert not ads.should_block("https://cdn.www.example.com/banner-ads/1.png", "image",
                                main_document=False)
    assert not ads.should_block("https://adhost.com/", "document", main_document=True)
    kinds = RequestBlocker(
        CaptureOptions(url=PAGE, block_resources=[ResourceType.font, ResourceType.image]), [])
    assert kinds.should_block("https://www.example.com/a.woff2", "font", main_document=False)
    assert not kinds.should_block("https://adhost.com/a.js", "script", main_document=False)
    assert not RequestBlocker(CaptureOptions(url=PAGE), []).active
    assert RequestBlocker(CaptureOptions(url=PAGE, block_chats=True)).lists[0].category == "chats"


def page_requests(page: int) -> list[str]:
    """A page's 100 sub-requests: half its own, half from 20 other sites."""
    own = [f"https://static.site{page}.com/assets/{n}.js?v={page}" for n in range(50)]
    others = [f"https://cdn{n % 20}.vendor{n % 20}.net/lib/{page}/{n}.js" for n in range(50)]
    return own + others


def measure_matching(pages: int = 50) -> tuple[float, float]:
    """Requests matched per second with all three lists on, and the cost of one
    100-request page in ms (what bench/README.md reports)."""
    blockers = [RequestBlocker(CaptureOptions(url=f"https://www.site{page}.com/",
                                              block_ads=True, block_trackers=True,
                                              block_chats=True)) for page in range(pages)]
    work = [(blocker, page_requests(page)) for page, blocker in enumerate(blockers)]
    started = time.perf_counter()
    for blocker, urls in work:
        for url in urls:
            blocker.should_block(url, "script", main_document=False)
    seconds = time.perf_counter() - started
    per_second = pages * 100 / seconds
    return per_second, 100 / per_second * 1000


def test_matching_speed_requests_per_second() -> None:
    """Matching is cheap beside a capture (hundreds of ms): a 100-request page costs a few
    ms at most, even on a loaded machine."""
    measure_matching(2)  # lists compiled, caches warm
    per_second, page_ms = measure_matching()
    print(f"\nfilter matching: {per_second:,.0f} requests/s, {page_ms:.2f} ms per 100-request page")
    assert page_ms < 50


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
    rules = build_consent_rules(AUTOCONSENT, source=source)["rules"]
    assert rules == [
        {"name": "cmp-a", "url": None, "detect": ["#cmp-a"], "accept": ["#cmp-a .accept"],
         "hide": ["#cmp-a"]},
        {"name": "cmp-b", "url": "^https://b\\.example/", "detect": ["#cmp-b"], "accept": [],
         "hide": ["#cmp-b"]},
    ]
    with pytest.raises(ConfigurationError, match="not an Adblock Plus filter list"):
        check_filter_list("<html>404</html>", "EasyList")
    with pytest.raises(ConfigurationError, match="holds no rule"):
        check_filter_list("[Adblock Plus 2.0]\n! Title: x\n", "EasyList")
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


SMALL_EASYLIST = "[Adblock Plus 2.0]\n! Title: EasyList\n||adco.example^\n##.promo-box\n"
SMALL_EASYPRIVACY = "[Adblock Plus 2.0]\n! Title: EasyPrivacy\n||stats.example^\n"


def test_update_command_rebuilds_the_data_files_from_files_and_urls(
    tmp_path: Path, page_server: PageServer
) -> None:
    easylist = tmp_path / "easylist.txt"
    easylist.write_text(SMALL_EASYLIST)
    consent = npm_tarball(tmp_path / "autoconsent.tgz", "@duckduckgo/autoconsent",
                          {"package/rules/rules.json": AUTOCONSENT})
    out = tmp_path / "data"
    out.mkdir()
    (out / "filter_lists.json").write_text(json.dumps({"source": {"chats": {"file": "c.txt"}}}))
    # EasyPrivacy over HTTP: the page server serves tests/pages, where no list lives, so
    # first a URL that answers 404 (nothing may be written), then a real list file.
    missing = page_server.url("/quality/no-such-list.txt")
    result = CliRunner().invoke(main, [
        "blocklist", "update", "--output-dir", str(out), "--easylist", str(easylist),
        "--easyprivacy", missing, "--consent-tarball", str(consent),
    ])
    assert result.exit_code == 1 and "could not download" in result.output
    assert not (out / "easylist.txt.gz").exists()

    served = Path(__file__).parent / "pages" / "quality" / "easyprivacy-sample.txt"
    served.write_text(SMALL_EASYPRIVACY)
    try:
        result = CliRunner().invoke(main, [
            "blocklist", "update", "--output-dir", str(out), "--easylist", str(easylist),
            "--easyprivacy", page_server.url("/quality/easyprivacy-sample.txt"),
            "--consent-tarball", str(consent),
        ])
    finally:
        served.unlink()
    assert result.exit_code == 0, result.output
    assert "CC-BY-SA-3.0" in result.output
    assert read_rules(out / "easylist.txt.gz") == SMALL_EASYLIST
    sources = list_sources(out / "filter_lists.json")
    assert sources["chats"] == {"file": "c.txt"}  # kept as it was
    assert sources["trackers"]["fetched_from"].startswith(page_server.url("/quality/"))
    trackers = load_filter_list.__wrapped__("trackers", out)
    assert blocks(trackers, "https://stats.example/t.js")
    rules = load_rules.__wrapped__((out / "consent_rules.json",))
    assert [rule.name for rule in rules] == ["cmp-a", "cmp-b"]


def test_update_command_from_debians_copies(tmp_path: Path) -> None:
    """The offline path: Debian's webext-ublock-origin-chromium package (installed by
    scripts/install-system-deps.sh)."""
    out = tmp_path / "data"
    result = CliRunner().invoke(main, [
        "blocklist", "update", "--output-dir", str(out), "--from-debian", "--skip-consent-rules",
    ])
    assert result.exit_code == 0, result.output
    assert gzip.decompress((out / "easylist.txt.gz").read_bytes()).decode() == (
        DEBIAN_LISTS / "easylist.txt").read_text()
    assert not (out / "consent_rules.json").exists()
    ads = load_filter_list.__wrapped__("ads", out)
    assert blocks(ads, "https://securepubads.g.doubleclick.net/tag/js/gpt.js")


def test_update_command_reports_a_broken_package(tmp_path: Path) -> None:
    broken = npm_tarball(tmp_path / "broken.tgz", "@duckduckgo/autoconsent", {})
    easylist = tmp_path / "easylist.txt"
    easylist.write_text(SMALL_EASYLIST)
    result = CliRunner().invoke(main, [
        "blocklist", "update", "--output-dir", str(tmp_path / "data"),
        "--easylist", str(easylist), "--easyprivacy", str(easylist),
        "--consent-tarball", str(broken),
    ])
    assert result.exit_code == 1
    assert "cannot read package/rules/rules.json" in result.output
    assert not (tmp_path / "data" / "consent_rules.json").exists()

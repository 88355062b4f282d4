"""The URL policy against hostile URLs: odd IP spellings, userinfo tricks, IDN, DNS answers.

DNS is simulated by a fake resolver (the machine has no network); the browser-side parsing
is cross-checked against rust-url (pydantic-core), a WHATWG URL implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import Url

from shared.errors import ConfigurationError, UrlBlocked
from shared.settings import Settings
from shared.url_policy import (
    CheckedUrl,
    IPAddress,
    UrlPolicy,
    aresolve_host,
    normalize_host,
    resolve_host,
)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

FAKE_DNS: dict[str, list[str]] = {
    "example.test": [PUBLIC_V4],
    "dual.test": [PUBLIC_V4, PUBLIC_V6],
    "evil.test": ["127.0.0.1"],
    "rebind.test": ["8.8.8.8", "10.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "nat64.test": ["64:ff9b::a9fe:a9fe"],
    "scoped.test": ["fe80::1%eth0"],
    "cgnat.test": ["100.64.0.1"],
    "xn--bcher-kva.test": ["10.1.2.3"],  # bücher.test
    "empty.test": [],
    # A lying DNS server: browsers answer these names with loopback themselves.
    "localhost": [PUBLIC_V4],
    "foo.localhost": [PUBLIC_V4],
}


class FakeResolver:
    """DNS from :data:`FAKE_DNS`, remembering what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        name = host.removesuffix(".")  # DNS treats the root dot as implicit
        if name not in FAKE_DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ip_address(address) for address in FAKE_DNS[name]]

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The same answers, for :meth:`UrlPolicy.acheck_url`."""
        await asyncio.sleep(0)
        return self(host, port)


def public_resolver(host: str, port: int) -> list[IPAddress]:
    """Every name resolves to one public address."""
    return [ip_address(PUBLIC_V4)]


def wide(text: str) -> str:
    """``text`` with its letters and digits in full width (UTS 46 maps them back)."""
    return "".join(chr(ord(char) + 0xFEE0) if char.isalnum() else char for char in text)


POLICY = UrlPolicy()
LOOPBACK_ALLOWED = UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))
EVERYTHING_ALLOWED = UrlPolicy(allowed_networks=(ip_network("0.0.0.0/0"), ip_network("::/0")))

# (url, a fragment the refusal message must contain)
HOSTILE: list[tuple[str, str]] = [
    # loopback, every spelling
    ("http://127.0.0.1/", "loopback"),
    ("http://127.0.0.1:8080/admin", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0X7F000001/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://0x7f.0x0.0x0.0x1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://0177.1/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://127.000.000.001/", "loopback"),
    ("http://127.255.255.254/", "loopback"),
    ("http://127%2E0%2E0%2E1/", "loopback"),
    ("http://%31%32%37.0.0.1/", "loopback"),
    ("http://12\t7.0.0.1/", "loopback"),
    ("  http://127.0.0.1/  ", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "loopback"),
    # unspecified and 'this network'
    ("http://0/", "0.0.0.0/8"),
    ("http://0.0.0.0/", "0.0.0.0/8"),
    ("http://0x0/", "0.0.0.0/8"),
    ("http://0.1.2.3/", "0.0.0.0/8"),
    ("http://[::]/", "unspecified"),
    # private
    ("http://10.0.0.1/", "private"),
    ("http://012.0.0.1/", "private"),
    ("http://167772161/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.255/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://0xc0.0xa8.1.1/", "private"),
    ("http://192.168.257/", "private"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[fc00::1]/", "unique local"),
    ("http://[fd12:3456::1]/", "unique local"),
    # link-local and cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("HTTP://169.254.169.254/", "link-local"),
    ("hTTp://169.254.169.254/", "link-local"),
    ("http://2852039166/", "link-local"),
    ("http://0xa9fea9fe/", "link-local"),
    ("http://0251.0376.0251.0376/", "link-local"),
    ("http://169.254.43518/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[::ffff:a9fe:a9fe]/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "zone"),
    ("http://[fec0::1]/", "site-local"),
    # the explicitly listed ranges
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://100.127.255.254/", "carrier-grade NAT"),
    ("http://192.0.0.9/", "IETF protocol assignment"),
    ("http://192.0.0.170/", "IETF protocol assignment"),
    ("http://192.88.99.1/", "6to4 relay"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://198.19.255.255/", "benchmarking"),
    ("http://192.0.2.1/", "documentation"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64"),
    ("http://[64:ff9b::127.0.0.1]/", "NAT64"),
    ("http://[64:ff9b:1::1]/", "NAT64"),
    ("http://[2001::1]/", "Teredo"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[2002:a9fe:a9fe::]/", "6to4"),
    ("http://[2002:7f00:1::]/", "6to4"),
    ("http://[::127.0.0.1]/", "IPv4-compatible"),
    ("http://[::a9fe:a9fe]/", "IPv4-compatible"),
    ("http://[5f00::1]/", "SRv6"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[100::1]/", "discard-only"),
    ("http://[4000::1]/", "reserved"),
    # userinfo and backslash tricks: the host after the last @ is the one connected to
    ("http://public@127.0.0.1/", "loopback"),
    ("http://8.8.8.8@127.0.0.1/", "loopback"),
    ("http://example.test@evil.test/", "evil.test resolves to 127.0.0.1"),
    ("http://user:pass@10.0.0.1/", "private"),
    ("http://a@b@c@127.0.0.1/", "loopback"),
    ("http://8.8.8.8:80@127.0.0.1/", "loopback"),
    ("http://127.0.0.1#@8.8.8.8/", "loopback"),
    ("http://127.0.0.1?@8.8.8.8/", "loopback"),
    ("http://127.0.0.1\\@8.8.8.8/", "loopback"),
    ("http:\\\\127.0.0.1/", "loopback"),
    ("http:/127.0.0.1/", "loopback"),
    ("http:127.0.0.1/", "loopback"),
    ("http:///127.0.0.1/", "loopback"),
    ("http://\\/127.0.0.1/", "loopback"),
    # hostnames, through the fake DNS
    ("http://evil.test/", "evil.test resolves to 127.0.0.1, which is a loopback"),
    ("http://EVIL.TEST./", "loopback"),
    ("http://%65vil.test/", "loopback"),
    ("http://rebind.test/", "rebind.test resolves to 10.0.0.1, which is a private"),
    ("http://metadata.test/", "link-local"),
    ("http://v6loop.test/", "loopback"),
    ("http://mapped.test/", "link-local"),
    ("http://nat64.test/", "NAT64"),
    ("http://scoped.test/", "link-local"),
    ("http://cgnat.test/", "carrier-grade NAT"),
    ("http://nowhere.test/", "could not resolve host nowhere.test"),
    ("http://empty.test/", "could not resolve host empty.test"),
    ("http://localhost/", "loopback"),
    ("http://localhost./", "loopback"),
    ("http://LOCALHOST:8080/", "loopback"),
    ("http://foo.localhost/", "loopback"),
    ("http://foo.localhost./", "loopback"),
    # IDN that maps to something bad
    ("http://" + wide("127.0.0.1") + "/", "loopback"),
    ("http://127\u30020\u30020\u30021/", "loopback"),  # ideographic full stops
    ("http://⑫⑦.0.0.1/", "loopback"),
    ("http://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1/", "loopback"),
    ("http://" + wide("localhost") + "/", "loopback"),
    ("http://ⓔⓥⓘⓛ.test/", "evil.test resolves to 127.0.0.1"),
    ("http://bücher.test/", "xn--bcher-kva.test resolves to 10.1.2.3"),
    ("http://xn--a.test/", "invalid international host name"),
    # malformed hosts and ports
    ("http://1.2.3.09/", "invalid IPv4"),
    ("http://1.2.3.4.5/", "invalid IPv4"),
    ("http://256.0.0.1/", "invalid IPv4"),
    ("http://4294967296/", "invalid IPv4"),
    ("http://[::1/", "invalid IPv6"),
    ("http://[127.0.0.1]/", "invalid IPv6"),
    ("http://exa%2Fmple.test/", "invalid host"),
    ("http://exa%00mple.test/", "invalid host"),
    ("http://%/", "invalid host"),
    ("http://./", "invalid host"),
    ("http://8.8.8.8:65536/", "invalid port"),
    ("http://8.8.8.8:8o/", "invalid port"),
    # empty hosts
    ("http://", "no host"),
    ("http:///", "no host"),
    ("http://user@/", "no host"),
    ("http://:80/", "no host"),
    ("http://?x=1", "no host"),
    ("http://#frag", "no host"),
    # schemes
    ("file:///etc/passwd", "file: URLs are not allowed"),
    ("FILE://localhost/etc/passwd", "file: URLs are not allowed"),
    ("ftp://8.8.8.8/", "ftp: URLs"),
    ("data:text/html,<h1>hi</h1>", "data: URLs"),
    ("javascript:alert(1)", "javascript: URLs"),
    ("gopher://127.0.0.1:6379/_INFO", "gopher: URLs"),
    ("dict://127.0.0.1:6379/info", "dict: URLs"),
    ("ws://8.8.8.8/", "ws: URLs"),
    ("blob:http://8.8.8.8/uuid", "blob: URLs"),
    ("view-source:http://8.8.8.8/", "view-source: URLs"),
    ("//8.8.8.8/", "must start with http"),
    ("8.8.8.8", "must start with http"),
    ("", "must start with http"),
    # disallowed ports on public addresses
    ("http://8.8.8.8:22/", "port 22 is not allowed"),
    ("https://8.8.8.8:6379/", "port 6379"),
    ("http://8.8.8.8:0/", "port 0 is not a valid"),
    ("http://8.8.8.8:65535/", "port 65535"),
    ("http://example.test:25/", "port 25"),
    ("https://[2606:4700:4700::1111]:8000/", "port 8000"),
    # too long
    ("http://8.8.8.8/" + "a" * 2040, "longer than 2048"),
    ("http://8.8.8.8/" + "é" * 500, "longer than 2048 characters once normalised"),
]


@pytest.mark.parametrize(("url", "reason"), HOSTILE, ids=[repr(url[:60]) for url, _ in HOSTILE])
def test_hostile_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlBlocked) as refused:
        POLICY.check_url(url, resolver=FakeResolver())
    assert reason in refused.value.message


def test_hostile_table_is_big_enough() -> None:
    assert len(HOSTILE) >= 60
    assert len({url for url, _ in HOSTILE}) == len(HOSTILE)


def test_hostile_urls_are_refused_by_the_async_check() -> None:
    async def verdicts() -> list[str | None]:
        resolver = FakeResolver()
        results: list[str | None] = []
        for url, _ in HOSTILE:
            try:
                await POLICY.acheck_url(url, resolver=resolver.resolve)
                results.append(None)
            except UrlBlocked as exc:
                results.append(exc.message)
        return results

    for (url, reason), message in zip(HOSTILE, asyncio.run(verdicts()), strict=True):
        assert message is not None and reason in message, url


def test_refusal_messages_name_the_address_the_reason_and_the_way_out() -> None:
    with pytest.raises(UrlBlocked) as refused:
        POLICY.check_url("http://2130706433/")
    assert refused.value.message == (
        "127.0.0.1 is a loopback address; only public addresses are allowed "
        "(operators can allow ranges with SHOTLINE_ALLOWED_NETWORKS)"
    )
    assert refused.value.code == "url_blocked"
    with pytest.raises(UrlBlocked, match=r"::ffff:a9fe:a9fe \(169\.254\.169\.254\) is a link"):
        POLICY.check_url("http://[::ffff:169.254.169.254]/")
    with pytest.raises(UrlBlocked, match="allowed ports: 80, 443, 8080, 8443"):
        POLICY.check_url("http://8.8.8.8:22/")


# (url, normalised url, addresses)
ALLOWED: list[tuple[str, str, tuple[str, ...]]] = [
    ("http://8.8.8.8/", "http://8.8.8.8/", ("8.8.8.8",)),
    ("https://1.1.1.1:8443/a?b=c#d", "https://1.1.1.1:8443/a?b=c#d", ("1.1.1.1",)),
    ("HTTPS://1.1.1.1:443", "https://1.1.1.1/", ("1.1.1.1",)),
    ("http://0x08080808:0080/", "http://8.8.8.8/", ("8.8.8.8",)),
    ("http://134744072/", "http://8.8.8.8/", ("8.8.8.8",)),
    ("http://[2001:4860:4860::8888]:8080/", "http://[2001:4860:4860::8888]:8080/",
     ("2001:4860:4860::8888",)),
    ("http://[::ffff:8.8.8.8]/", "http://[::ffff:808:808]/", ("::ffff:808:808",)),
    ("http://example.test/", "http://example.test/", (PUBLIC_V4,)),
    ("HTTP://Example.TEST./A/../b/./c?x y#z w",
     "http://example.test./b/c?x%20y#z%20w", (PUBLIC_V4,)),
    ("http://dual.test/", "http://dual.test/", (PUBLIC_V4, PUBLIC_V6)),
    ("http://ex%41mple.test/", "http://example.test/", (PUBLIC_V4,)),
    ("http://" + wide("example") + "\u3002test/", "http://example.test/", (PUBLIC_V4,)),
    # the userinfo is kept but encoded, so that no RFC 3986 parser can read another host
    ("http://a:b@c:d@example.test/", "http://a:b%40c%3Ad@example.test/", (PUBLIC_V4,)),
    ("http://127.0.0.1:80@8.8.8.8/", "http://127.0.0.1:80@8.8.8.8/", ("8.8.8.8",)),
    # a browser connects to 8.8.8.8 here; the normalised URL makes every client agree
    ("http://8.8.8.8\\@127.0.0.1/", "http://8.8.8.8/@127.0.0.1/", ("8.8.8.8",)),
    ("http://8.8.8.8/\u00fc?\u00fc#\u00fc", "http://8.8.8.8/%C3%BC?%C3%BC#%C3%BC", ("8.8.8.8",)),
]


@pytest.mark.parametrize(("url", "normalised", "addresses"), ALLOWED)
def test_public_urls_are_allowed(url: str, normalised: str, addresses: tuple[str, ...]) -> None:
    checked = POLICY.check_url(url, resolver=FakeResolver())
    assert checked.url == normalised
    assert checked.addresses == tuple(ip_address(address) for address in addresses)
    assert urlsplit(checked.url).hostname == checked.host.lower()
    assert httpx.URL(checked.url).host == checked.host
    assert POLICY.check_url(checked.url, resolver=FakeResolver()) == checked


def test_checked_url_parts() -> None:
    resolver = FakeResolver()
    checked = POLICY.check_url("https://BÜCHER.test:8443/x", resolver=public_resolver)
    assert checked == CheckedUrl(
        scheme="https",
        host="xn--bcher-kva.test",
        port=8443,
        addresses=(IPv4Address(PUBLIC_V4),),
        url="https://xn--bcher-kva.test:8443/x",
    )
    POLICY.check_url("http://example.test./", resolver=resolver)
    assert resolver.calls == [("example.test.", 80)]


def test_ip_literals_and_localhost_never_reach_the_resolver() -> None:
    resolver = FakeResolver()
    for url in ("http://8.8.8.8/", "http://[2001:4860:4860::8888]/", "http://localhost/"):
        with contextlib.suppress(UrlBlocked):
            POLICY.check_url(url, resolver=resolver)
    assert resolver.calls == []


def test_async_check_gives_the_same_answer() -> None:
    resolver = FakeResolver()
    checked = asyncio.run(POLICY.acheck_url("http://dual.test:8080/", resolver=resolver.resolve))
    assert checked == POLICY.check_url("http://dual.test:8080/", resolver=resolver)
    assert resolver.calls == [("dual.test", 8080), ("dual.test", 8080)]


def test_allowed_network_opens_every_port_on_it() -> None:
    resolver = FakeResolver()
    assert LOOPBACK_ALLOWED.check_url("http://127.0.0.1:6379/").port == 6379
    assert LOOPBACK_ALLOWED.check_url("http://0x7f000001:1/").url == "http://127.0.0.1:1/"
    assert LOOPBACK_ALLOWED.check_url("http://127.9.9.9:65535/").addresses == (
        IPv4Address("127.9.9.9"),
    )
    assert LOOPBACK_ALLOWED.check_url("http://[::ffff:127.0.0.1]:9/").port == 9
    assert LOOPBACK_ALLOWED.check_url("http://evil.test:5000/", resolver=resolver).addresses == (
        IPv4Address("127.0.0.1"),
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://localhost:8000/", "::1, which is a loopback"),
        ("http://rebind.test/", "10.0.0.1"),
        ("http://128.0.0.1:6379/", "port 6379"),
        ("http://8.8.8.8:6379/", "port 6379"),
    ],
)
def test_allowed_network_opens_nothing_else(url: str, reason: str) -> None:
    with pytest.raises(UrlBlocked, match=reason):
        LOOPBACK_ALLOWED.check_url(url, resolver=FakeResolver())


def test_localhost_needs_both_loopback_addresses_allowed() -> None:
    policy = UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"), ip_network("::1/128")))
    checked = policy.check_url("http://localhost:8000/")
    assert checked.addresses == (IPv4Address("127.0.0.1"), IPv6Address("::1"))


def test_every_address_must_pass_for_any_port() -> None:
    policy = UrlPolicy(allowed_networks=(ip_network("10.0.0.0/8"),))
    resolver = FakeResolver()
    assert policy.check_url("http://rebind.test/", resolver=resolver).addresses == (
        IPv4Address("8.8.8.8"),
        IPv4Address("10.0.0.1"),
    )
    # port 22 would be fine on 10.0.0.1, but not on 8.8.8.8
    with pytest.raises(UrlBlocked, match="port 22"):
        policy.check_url("http://rebind.test:22/", resolver=resolver)


def test_allowed_ports_are_configurable() -> None:
    policy = UrlPolicy(allowed_ports=frozenset({80}))
    assert policy.check_url("http://8.8.8.8/").port == 80
    with pytest.raises(UrlBlocked, match=r"port 443 .*allowed ports: 80;"):
        policy.check_url("https://8.8.8.8/")
    with pytest.raises(ConfigurationError):
        UrlPolicy(allowed_ports=frozenset({0}))


def test_from_settings() -> None:
    configured = Settings(
        _env_file=None,
        allowed_networks="127.0.0.0/8, ::1/128",
        allowed_ports="80,8000",
    )
    policy = UrlPolicy.from_settings(configured)
    assert policy == UrlPolicy(
        allowed_networks=(ip_network("127.0.0.0/8"), ip_network("::1/128")),
        allowed_ports=frozenset({80, 8000}),
    )
    assert policy.check_url("http://localhost:1234/").port == 1234
    assert UrlPolicy.from_settings(Settings(_env_file=None)) == POLICY


@pytest.mark.parametrize(
    ("address", "port", "reason"),
    [
        ("127.0.0.1", 80, "loopback"),
        ("::ffff:127.0.0.1", 443, "loopback"),
        ("fe80::1%eth0", 80, "link-local"),
        ("64:ff9b::808:808", 80, "NAT64"),
        ("8.8.8.8", 22, "port 22"),
        ("8.8.8.8", 70000, "not a valid TCP port"),
    ],
)
def test_check_address_refuses(address: str, port: int, reason: str) -> None:
    with pytest.raises(UrlBlocked, match=reason):
        POLICY.check_address(ip_address(address), port)


def test_check_address_allows() -> None:
    POLICY.check_address(IPv4Address("8.8.8.8"), 443)
    POLICY.check_address(IPv6Address("2001:4860:4860::8888"), 80)
    LOOPBACK_ALLOWED.check_address(IPv4Address("127.0.0.1"), 22)
    with pytest.raises(UrlBlocked):
        LOOPBACK_ALLOWED.check_address(IPv4Address("128.0.0.1"), 22)


def test_default_resolvers_use_getaddrinfo() -> None:
    # Numeric hosts: getaddrinfo answers them without asking DNS.
    assert resolve_host("127.0.0.1", 80) == [IPv4Address("127.0.0.1")]
    assert asyncio.run(aresolve_host("127.0.0.1", 80)) == [IPv4Address("127.0.0.1")]


def test_normalize_host() -> None:
    assert normalize_host("0x7f.1") == IPv4Address("127.0.0.1")
    assert normalize_host("[::FFFF:127.0.0.1]") == IPv6Address("::ffff:7f00:1")
    assert normalize_host("Example.COM.") == "example.com."
    assert normalize_host("faß.de") == "xn--fa-hia.de"  # non-transitional, like browsers
    assert normalize_host("1.2.3.x") == "1.2.3.x"  # does not end in a number: a domain
    with pytest.raises(UrlBlocked):
        normalize_host("foo.0x")


# --- properties -----------------------------------------------------------------------

BLOCKED_NETWORKS = [
    ip_network(cidr)
    for cidr in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "224.0.0.0/4", "240.0.0.0/4",
    )
]
FAST = settings(max_examples=300, deadline=None, database=None)

ipv4_ints = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from(BLOCKED_NETWORKS).flatmap(
        lambda net: st.integers(int(net.network_address), int(net.broadcast_address))
    ),
)


@st.composite
def ipv4_spellings(draw: st.DrawFn, value: int) -> str:
    """One of the many ways a browser accepts to write the IPv4 address ``value``."""
    count = draw(st.integers(1, 4))
    octets = value.to_bytes(4, "big")
    numbers = [*octets[: count - 1], int.from_bytes(octets[count - 1 :], "big")]
    parts = []
    for number in numbers:
        radix = draw(st.sampled_from(["dec", "hex", "HEX", "oct"]))
        zeros = "0" * draw(st.integers(0, 3))
        if radix == "dec":
            parts.append(str(number))
        elif radix == "oct":
            parts.append("0" + zeros + format(number, "o"))
        else:
            digits = format(number, "x" if radix == "hex" else "X")
            parts.append(draw(st.sampled_from(["0x", "0X"])) + zeros + digits)
    spelling = ".".join(parts) + draw(st.sampled_from(["", "."]))
    if draw(st.booleans()):  # percent-encode or full-width some characters
        spelling = "".join(
            draw(st.sampled_from([char, f"%{ord(char):02X}", chr(ord(char) + 0xFEE0)]))
            for char in spelling
        )
    return spelling


def verdict(policy: UrlPolicy, url: str) -> tuple[bool, str]:
    try:
        checked = policy.check_url(url, resolver=public_resolver)
        return True, f"{checked.host} {checked.port} {checked.addresses}"
    except UrlBlocked as exc:
        return False, exc.message


@FAST
@given(data=st.data(), value=ipv4_ints, port=st.sampled_from([80, 443, 22, 6379]))
def test_every_ipv4_spelling_gets_the_verdict_of_the_dotted_address(
    data: st.DataObject, value: int, port: int
) -> None:
    spelling = data.draw(ipv4_spellings(value))
    canonical = str(IPv4Address(value))
    assert normalize_host(spelling) == IPv4Address(value)
    for policy in (POLICY, LOOPBACK_ALLOWED):
        expected = verdict(policy, f"http://{canonical}:{port}/")
        assert verdict(policy, f"http://{spelling}:{port}/") == expected
        assert verdict(policy, f"HTTP://u@{spelling}:{port}\\x") == expected
        mapped = verdict(policy, f"http://[::ffff:{canonical}]:{port}/")
        assert mapped[0] == expected[0]


@FAST
@given(
    value=st.one_of(
        st.integers(0, 2**128 - 1),
        st.integers(0, 2**32 - 1).map(lambda v: v | 0xFFFF_0000_0000),
        st.sampled_from(["fe80::/10", "fc00::/7", "2002::/16", "64:ff9b::/96", "2000::/3"])
        .map(ip_network)
        .flatmap(lambda n: st.integers(int(n.network_address), int(n.broadcast_address))),
    ),
    form=st.sampled_from(["compressed", "exploded", "upper"]),
)
def test_every_ipv6_spelling_gets_the_verdict_of_the_canonical_address(
    value: int, form: str
) -> None:
    address = IPv6Address(value)
    spelling = address.exploded if form == "exploded" else address.compressed
    if form == "upper":
        spelling = spelling.upper()
    expected = verdict(POLICY, f"http://[{address.compressed}]/")
    assert verdict(POLICY, f"http://[{spelling}]/") == expected
    if address.ipv4_mapped is not None:
        assert expected[0] == verdict(POLICY, f"http://{address.ipv4_mapped}/")[0]
    elif expected[0]:  # nothing but global unicast gets through
        assert address in ip_network("2000::/3") and address.is_global


# Pieces of URLs that parsers disagree about.
URL_PIECES = st.lists(
    st.sampled_from(
        [
            "a", "B", "7", "0", "0x", "1", "127", "255", "256", ".", "..", "%2e", "%2E", "@",
            ":", "/", "\\", "?", "#", "[", "]", "::1", "%", "%41", "%30", "%zz", " ", "\t",
            "é", "ß", "\uff11", "\u3002", "Ⓐ", "xn--", "-", "_", "localhost", "'", '"', "<", "`", "{",
            "^", "|", "8080", "\u200d", "ﬀ",
        ]
    ),
    max_size=12,
).map("".join)


def rust_url(url: str) -> Url | None:
    try:
        return Url(url)
    except ValueError:
        return None


@settings(max_examples=1500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from(["http://", "HTTPS://", "http:", "http:\\\\", "https:///", " http://"]),
    rest=URL_PIECES,
)
def test_urls_are_parsed_like_a_browser_parses_them(prefix: str, rest: str) -> None:
    """rust-url (the WHATWG parser in pydantic-core) is the reference browser here."""
    url = prefix + rest
    reference = rust_url(url)
    try:
        checked = EVERYTHING_ALLOWED.check_url(url, resolver=public_resolver)
    except UrlBlocked as exc:
        # Deliberately stricter: dots-only hosts, port 0 (browsers refuse it too), and
        # IDNA 2008 where UTS 46 is lenient.
        stricter = reference is not None and (
            not (reference.host or "").strip(".")
            or exc.message.startswith(("invalid international host name", "port 0 "))
        )
        assert reference is None or stricter, f"{url!r} refused ({exc}), browsers open it"
        return
    assert reference is not None, f"{url!r} accepted as {checked.url}, browsers refuse it"
    assert checked.host == (reference.host or "").strip("[]")
    assert checked.port == reference.port
    assert checked.url == str(reference)


@FAST
@given(rest=st.text(max_size=40))
def test_only_url_blocked_escapes_and_accepted_urls_are_unambiguous(rest: str) -> None:
    try:
        checked = EVERYTHING_ALLOWED.check_url("http://" + rest, resolver=public_resolver)
    except UrlBlocked:
        return
    assert rust_url(checked.url) is not None
    assert (rust_url(checked.url) or Url("http://x")).host == _bracketed(checked)
    assert urlsplit(checked.url).hostname == checked.host.lower()
    assert EVERYTHING_ALLOWED.check_url(checked.url, resolver=public_resolver) == checked


def _bracketed(checked: CheckedUrl) -> str:
    return f"[{checked.host}]" if ":" in checked.host else checked.host

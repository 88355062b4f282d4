"""The SSRF-safe HTTP client: one resolution per connection, every address checked, the
connection made to a checked address while Host, SNI and certificate checks keep the name."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from ipaddress import IPv4Address, ip_address

import httpx
import pytest
import trustme

from shared.errors import UrlBlocked
from shared.safe_http import safe_async_client
from shared.url_policy import IPAddress, UrlPolicy
from tests.servers import free_port
from tests.webhook_receiver import Reply, WebhookReceiver


def _policy(*, allow_loopback: bool, port: int) -> UrlPolicy:
    from ipaddress import ip_network

    networks = (ip_network("127.0.0.0/8"),) if allow_loopback else ()
    return UrlPolicy(allowed_networks=networks, allowed_ports=frozenset({80, 443, port}))


class ScriptedDns:
    """A resolver answering from a script, one answer per lookup; records every lookup."""

    def __init__(self, *answers: Iterable[str]) -> None:
        self.answers = [list(map(ip_address, answer)) for answer in answers]
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append((host, port))
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


def _post(client: httpx.AsyncClient, url: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with client:
            return await client.post(url, content=b"{}")

    return asyncio.run(go())


def test_connects_to_the_checked_address_and_keeps_the_host_name() -> None:
    with WebhookReceiver() as receiver:
        dns = ScriptedDns(["127.0.0.1"])
        client = safe_async_client(_policy(allow_loopback=True, port=receiver.port), resolver=dns)
        response = _post(client, f"http://hooks.example.test:{receiver.port}/hook")
        assert response.status_code == 200
        assert dns.lookups == [("hooks.example.test", receiver.port)]
        assert receiver.received[0].headers["host"] == f"hooks.example.test:{receiver.port}"


def test_dns_rebinding_after_the_check_is_refused_at_connect_time() -> None:
    """The name resolves public when checked (say at submit), loopback when connecting."""
    with WebhookReceiver() as receiver:
        dns = ScriptedDns(["93.184.215.14"], ["127.0.0.1"])
        policy = _policy(allow_loopback=False, port=receiver.port)
        url = f"http://rebind.example.test:{receiver.port}/hook"
        checked = policy.check_url(url, resolver=lambda h, p: [IPv4Address("93.184.215.14")])
        assert checked.addresses == (IPv4Address("93.184.215.14"),)
        asyncio.run(policy.acheck_url(url, resolver=dns))  # first answer: public, accepted
        client = safe_async_client(policy, resolver=dns)
        with pytest.raises(UrlBlocked, match="loopback"):
            _post(client, url)
        assert len(dns.lookups) == 2
        assert receiver.received == []


def test_one_blocked_address_among_several_refuses_the_connection() -> None:
    with WebhookReceiver() as receiver:
        dns = ScriptedDns(["127.0.0.1", "10.1.2.3"])
        client = safe_async_client(_policy(allow_loopback=True, port=receiver.port), resolver=dns)
        with pytest.raises(UrlBlocked, match=r"10\.1\.2\.3"):
            _post(client, f"http://mixed.example.test:{receiver.port}/hook")
        assert receiver.received == []


def test_ip_literals_are_checked_without_dns() -> None:
    with WebhookReceiver() as receiver:
        dns = ScriptedDns(["127.0.0.1"])
        client = safe_async_client(_policy(allow_loopback=False, port=receiver.port), resolver=dns)
        with pytest.raises(UrlBlocked, match="loopback"):
            _post(client, receiver.url())
        assert dns.lookups == [] and receiver.received == []
        allowed = safe_async_client(_policy(allow_loopback=True, port=receiver.port))
        assert _post(allowed, receiver.url()).status_code == 200


def test_redirects_are_not_followed() -> None:
    with WebhookReceiver([Reply(301, {"Location": "/elsewhere"})]) as receiver:
        client = safe_async_client(_policy(allow_loopback=True, port=receiver.port))
        response = _post(client, receiver.url("/hook"))
        assert response.status_code == 301
        assert [r.path for r in receiver.received] == ["/hook"]


def test_proxy_settings_from_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    with WebhookReceiver() as receiver:
        client = safe_async_client(_policy(allow_loopback=True, port=receiver.port))
        assert _post(client, receiver.url()).status_code == 200
        assert len(receiver.received) == 1


def test_disallowed_ports_are_refused() -> None:
    with WebhookReceiver() as receiver:
        policy = UrlPolicy(allowed_networks=(), allowed_ports=frozenset({443}))
        client = safe_async_client(policy, resolver=ScriptedDns(["93.184.215.14"]))
        with pytest.raises(UrlBlocked, match="port"):
            _post(client, f"http://public.example.test:{receiver.port}/")
        assert receiver.received == []


def test_tls_uses_the_host_name_for_sni_and_certificate_checks() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.example.test").configure_cert(server_context)
    seen_sni: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with WebhookReceiver(ssl_context=server_context) as receiver:
        policy = _policy(allow_loopback=True, port=receiver.port)
        dns = ScriptedDns(["127.0.0.1"])
        client = safe_async_client(policy, resolver=dns, verify=client_context)
        response = _post(client, f"https://hooks.example.test:{receiver.port}/hook")
        assert response.status_code == 200
        assert seen_sni == ["hooks.example.test"]
        assert receiver.received[0].headers["host"] == f"hooks.example.test:{receiver.port}"
        # Same address, another name: the certificate does not match, the request fails.
        other = safe_async_client(policy, resolver=dns, verify=client_context)
        with pytest.raises(httpx.ConnectError, match="certificate"):
            _post(other, f"https://other.example.test:{receiver.port}/hook")
        assert len(receiver.received) == 1
